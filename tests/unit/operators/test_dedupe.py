"""dedupe's compiled index against plain Python models: the same verdict for every command,
through eviction at the window's edges, collisions in the index and snapshot/restore; the same
64-bit hashes as the Python code had, so snapshots it took resume with the same decisions."""

import hashlib
from array import array

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from core.envelope import MAX_TS, Command, Envelope, LogRecord, Reason, Rejected, failure
from core.outputs import Skipped
from operators.aggregates import stable_hash
from operators.dedupe import Dedupe, DedupeParams, SeenIds

#: the content hash of ids restored from a snapshot that kept none
UNKNOWN_CONTENT = 0


def content_hash(value: bytes | None) -> int:
    """The content hash as the Python code computed it (and old snapshots hold)."""
    return int.from_bytes(hashlib.blake2b(value or b"", digest_size=8).digest(), "big") or 1


class DictModel:
    """The semantics in the plainest form: an insertion-ordered dict of id hash -> (content,
    event time), the oldest dropped first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.ids: dict[int, tuple[int, int]] = {}
        self.newest = 0

    def verdict(self, h: int, content: int, ts: int) -> str:
        if h in self.ids:
            known = self.ids[h][0]
            return "skip" if known in (content, UNKNOWN_CONTENT) else "conflict"
        if len(self.ids) == self.capacity:
            del self.ids[next(iter(self.ids))]
        self.ids[h] = (content, ts)
        self.newest = max(self.newest, ts)
        return "pass"

    def expire(self, horizon: int) -> None:
        while self.ids and next(iter(self.ids.values()))[1] < horizon:
            del self.ids[next(iter(self.ids))]


# Few hashes: most ids collide on their probe start; pairs differ only in the top bit. The
# second set starts every probe in the last slots of an index of 8, 16 or 32, so runs wrap
# past its end and deletions shift members back across it.
HASHES = [n for n in range(32)] + [n | 1 << 63 for n in range(32)]
AT_THE_END = [6, 7, 14, 15, 30, 31] + [n | 1 << 63 for n in (6, 7, 14, 15, 30, 31)]
ops = st.lists(
    st.tuples(
        st.one_of(st.sampled_from(HASHES), st.sampled_from(AT_THE_END)),
        st.integers(1, 3),
        st.integers(0, 50),
        st.booleans(),
    ),
    max_size=300,
)


@settings(max_examples=300, deadline=None)
@given(capacity=st.integers(1, 12), ops=ops, ttl=st.integers(1, 60))
def test_the_index_and_a_dict_agree_on_every_lookup(capacity, ops, ttl):
    index, model = SeenIds(capacity), DictModel(capacity)
    ts = 0
    for h, content, step, expire in ops:
        ts += step - 10  # event time wanders back as well as forward
        expected = model.ids.get(h)
        assert index.put(h, content, ts) == (None if expected is None else expected[0])
        model.verdict(h, content, ts)
        if expire:
            index.expire(index.newest - ttl)
            model.expire(model.newest - ttl)
        assert len(index) == len(model.ids)
        assert index.occupied == len(model.ids)
        assert index.newest == model.newest
    hashes, contents, times = index.snapshot()
    assert list(zip(array("Q", hashes), array("Q", contents), array("q", times), strict=True)) == [
        (h, c, t) for h, (c, t) in model.ids.items()
    ]
    for h in HASHES:
        expected = model.ids.get(h)
        assert index.put(h, 0, ts) == (None if expected is None else expected[0])
        model.verdict(h, 0, ts)


def envelope(id_: str, content: bytes | None, ts: int, offset: int, replayed=None) -> Envelope:
    command = Command(id=id_, type="t", aggregate_id="a", ts=ts, v=1, data={})
    return Envelope(LogRecord(0, offset, ts, b"a", content, replayed_from=replayed), command)


batches = st.lists(
    st.tuples(
        st.lists(
            st.tuples(
                st.sampled_from([f"id{n}" for n in range(12)]),
                st.sampled_from([b"x", b"y", None]),
                st.integers(0, 3_000),
                st.sampled_from([None, None, None, 0, 1]),
            ),
            max_size=20,
        ),
        st.booleans(),
    ),
    max_size=15,
)


@settings(max_examples=200, deadline=None)
@given(max_keys=st.integers(1, 8), batches=batches)
def test_dedupe_verdicts_match_the_model_through_snapshots(max_keys, batches):
    """The filter as the executor drives it (a tiny index, so ids collide in it), DLQ replays
    among the commands, a snapshot/restore between batches when asked, expiry by ttl after each
    batch."""
    params = msgspec.convert({"ttl": 2_000, "max_keys": max_keys}, DedupeParams)
    dedupe = Dedupe("step", params)
    model = DictModel(max_keys)
    offset = 0
    state = dedupe.restore(None)
    for batch, restart in batches:
        envelopes = []
        for id_, content, ts, replayed in batch:
            envelopes.append(envelope(id_, content, ts, offset, replayed))
            offset += 1
        out = dedupe.process(state, envelopes)
        for e, got in zip(envelopes, out, strict=True):
            key = e.command.id
            if e.record.replayed_from is not None:
                key = f"{key}@dlq{e.record.replayed_from}"
            expected = model.verdict(stable_hash(key), content_hash(e.record.value), e.command.ts)
            if expected == "pass":
                assert got is e
            elif expected == "skip":
                assert got == Skipped("step", "deduplicated")
            else:
                detail = f"id {e.command.id!r} was already taken by a different command"
                assert got == Rejected(e.record, "step", Reason.ID_CONFLICT, detail)
        model.expire(model.newest - 2_000)
        if restart:
            state = dedupe.restore(dedupe.snapshot(state))
        assert len(state) == len(model.ids)
        assert state.newest == model.newest


@settings(max_examples=300, deadline=None)
@given(key=st.text(), value=st.one_of(st.none(), st.binary()))
def test_the_hashes_are_the_python_ones(key, value):
    dedupe = Dedupe("step", DedupeParams())
    state = dedupe.restore(None)
    dedupe.process(state, [envelope(key, value, 5, 0)])
    hashes, contents, times, newest = dedupe.snapshot(state)
    assert array("Q", hashes).tolist() == [stable_hash(key)]
    assert array("Q", contents).tolist() == [content_hash(value)]
    assert (array("q", times).tolist(), newest) == ([5], 5)


def test_a_command_whose_id_cannot_be_hashed_fails_as_it_did_in_python():
    dedupe = Dedupe("step", DedupeParams())
    state = dedupe.restore(None)
    bad, good = envelope("\ud800", b"x", 5, 0), envelope("ok", b"x", 5, 1)
    try:
        stable_hash("\ud800")
    except UnicodeEncodeError as exc:
        raised = exc
    out = dedupe.process(state, [bad, good, bad])
    assert out == [failure(bad.record, "step", raised), good, failure(bad.record, "step", raised)]
    assert out[0].reason == Reason.FILTER_ERROR and "surrogates not allowed" in out[0].detail
    assert len(state) == 1


def test_a_ttl_past_every_event_time_never_expires_and_never_stops_the_pipeline():
    # A ttl longer than the last event time a command may carry once overflowed the index's
    # 64-bit times on every batch (the Python index took any int).
    for ttl in (2**63, "106751991168d", 2**200):
        dedupe = Dedupe("step", DedupeParams(ttl=ttl))
        state = dedupe.restore(None)
        first = envelope("a", b"x", 0, 0)
        assert dedupe.process(state, [first]) == [first]
        late = envelope("b", b"y", MAX_TS, 1)
        assert dedupe.process(state, [late, envelope("a", b"x", MAX_TS, 2)]) == [
            late,
            Skipped("step", "deduplicated"),
        ]


# A snapshot the Python index took (commit 7020909): max_keys 6, ttl 1000, after id0..id8 at
# 100 ms steps with values v0, v1, v2, v0, ..., id4 replayed from DLQ offset 7.
OLD_SNAPSHOT = (
    bytes.fromhex(
        "b005a01428022f8f31396fb6abc7b3a934753f2846146bed"
        "7c89f7578ea19a1e292c104d3f785e7c67d68c5c865c43bb"
    ),
    bytes.fromhex(
        "a30f3f76339ae038da0bfe4035078a1c2f43b851d6a9b11b"
        "a30f3f76339ae038da0bfe4035078a1c2f43b851d6a9b11b"
    ),
    bytes.fromhex(
        "2c010000000000009001000000000000f401000000000000"
        "5802000000000000bc020000000000002003000000000000"
    ),
    800,
)


def test_snapshots_of_the_python_index_resume_with_its_decisions():
    dedupe = Dedupe("step", DedupeParams(ttl=1000, max_keys=6))
    second = [envelope("id4", b"v1", 950, 19, replayed=7)] + [
        envelope(f"id{n}", b"v%d" % (n % 3) if n % 2 else b"other", 900 + n, 20 + n)
        for n in range(8, -1, -1)
    ]

    def verdicts(snapshot):
        state = dedupe.restore(snapshot)
        assert len(state) == 6 and state.newest == 800
        out = dedupe.process(state, second)
        return [
            "new" if o is e else "dup" if isinstance(o, Skipped) else o.reason.value
            for o, e in zip(out, second, strict=True)
        ]

    # what the Python index decided on the same commands after the same restores
    assert (
        verdicts(OLD_SNAPSHOT) == ["dup", "id_conflict", "dup", "id_conflict", "dup"] + ["new"] * 5
    )
    hashes, _, times, newest = OLD_SNAPSHOT  # the 3-tuple, kept before content hashes
    assert verdicts((hashes, times, newest)) == ["dup"] * 5 + ["new"] * 5


def test_a_snapshot_is_the_live_ids_oldest_first_and_restores_to_the_same_bytes():
    dedupe = Dedupe("step", DedupeParams(max_keys=4))
    state = dedupe.restore(None)
    dedupe.process(state, [envelope(f"i{n}", b"x", n, n) for n in range(6)])  # the ring wraps
    snapshot = dedupe.snapshot(state)
    assert array("Q", snapshot[0]).tolist() == [stable_hash(f"i{n}") for n in range(2, 6)]
    assert array("q", snapshot[2]).tolist() == [2, 3, 4, 5]
    assert dedupe.snapshot(dedupe.restore(snapshot)) == snapshot


def test_a_torn_snapshot_is_refused():
    dedupe = Dedupe("step", DedupeParams(max_keys=4))
    hashes, contents, times, newest = OLD_SNAPSHOT
    for torn in [(hashes[:-1], contents, times, newest), (hashes, contents[:8], times, newest)]:
        try:
            dedupe.restore(torn)
        except ValueError:
            continue
        raise AssertionError(f"restored {torn!r}")


def test_the_index_costs_under_40_bytes_an_id():
    assert SeenIds(100_000).nbytes / 100_000 < 40
