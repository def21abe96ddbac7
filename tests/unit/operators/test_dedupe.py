"""dedupe's compact index against a plain dict model: the same verdict for every command,
through eviction at the window's edges, hash collisions and snapshot/restore."""

from unittest import mock

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from core.envelope import Command, Envelope, LogRecord, Reason, Rejected
from core.outputs import Skipped
from operators.aggregates import stable_hash
from operators.dedupe import UNKNOWN_CONTENT, Dedupe, DedupeParams, SeenIds, _content_hash


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


# Few hashes: most ids collide on their probe start; pairs differ only in the top bit.
HASHES = [n for n in range(20)] + [n | 1 << 63 for n in range(20)]
ops = st.lists(
    st.tuples(st.sampled_from(HASHES), st.integers(1, 3), st.integers(0, 50), st.booleans()),
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
        assert sum(1 for s in index.slots if s) == len(model.ids)
    for h in HASHES:
        expected = model.ids.get(h)
        assert index.put(h, 0, ts) == (None if expected is None else expected[0])
        model.verdict(h, 0, ts)


def envelope(id_: str, content: bytes, ts: int, offset: int) -> Envelope:
    command = Command(id=id_, type="t", aggregate_id="a", ts=ts, v=1, data={})
    return Envelope(LogRecord(0, offset, ts, b"a", content), command)


def tiny_hash(value: object) -> int:
    return stable_hash(value) % 7


batches = st.lists(
    st.tuples(
        st.lists(
            st.tuples(
                st.sampled_from([f"id{n}" for n in range(12)]),
                st.sampled_from([b"x", b"y"]),
                st.integers(0, 3_000),
            ),
            max_size=20,
        ),
        st.booleans(),
    ),
    max_size=15,
)


@settings(max_examples=200, deadline=None)
@given(max_keys=st.integers(1, 8), batches=batches, tiny=st.booleans())
def test_dedupe_verdicts_match_the_model_through_snapshots(max_keys, batches, tiny):
    """The filter as the executor drives it, with colliding 64-bit hashes when `tiny`, a
    snapshot/restore between batches when asked, expiry by ttl after each batch."""
    hash_of = tiny_hash if tiny else stable_hash
    params = msgspec.convert({"ttl": 2_000, "max_keys": max_keys}, DedupeParams)
    dedupe = Dedupe("step", params)
    model = DictModel(max_keys)
    offset = 0
    with mock.patch("operators.dedupe.stable_hash", hash_of):
        state = dedupe.restore(None)
        for batch, restart in batches:
            envelopes = []
            for id_, content, ts in batch:
                envelopes.append(envelope(id_, content, ts, offset))
                offset += 1
            out = dedupe.process(state, envelopes)
            for e, got in zip(envelopes, out, strict=True):
                content = _content_hash(e.record.value)
                expected = model.verdict(hash_of(e.command.id), content, e.command.ts)
                if expected == "pass":
                    assert got is e
                elif expected == "skip":
                    assert got == Skipped("step", "deduplicated")
                else:
                    assert isinstance(got, Rejected) and got.reason == Reason.ID_CONFLICT
            model.expire(model.newest - 2_000)
            if restart:
                state = dedupe.restore(dedupe.snapshot(state))
            assert len(state) == len(model.ids)


def test_old_snapshots_without_content_hashes_still_load():
    dedupe = Dedupe("step", DedupeParams(max_keys=4))
    state = dedupe.restore(None)
    dedupe.process(state, [envelope(f"i{n}", b"x", n, n) for n in range(6)])
    hashes, _, times, newest = dedupe.snapshot(state)
    old = dedupe.restore((hashes, times, newest))
    assert len(old) == 4
    # a kept id with no content hash is a repeat whatever its bytes; an evicted one is new
    repeat, evicted = envelope("i5", b"other", 9, 9), envelope("i1", b"x", 9, 10)
    assert dedupe.process(old, [repeat, evicted]) == [Skipped("step", "deduplicated"), evicted]


def test_the_index_costs_under_40_bytes_an_id():
    state = SeenIds(100_000)
    per_id = (
        sum(len(a) * a.itemsize for a in (state.hashes, state.contents, state.times, state.slots))
        / 100_000
    )
    assert per_id < 40
