"""Window aggregations equal a batch recomputation of the same commands, for input that arrives
out of order within the allowed lateness, however it is cut into batches.

The oracle calls none of the code under test: `approx_count_distinct` is checked against the
exact count (a KMV sketch is exact below its k hashes), and the partials' hashes are merged by
this file's own KMV estimate."""

from collections import defaultdict

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.envelope import Command, Envelope, LogRecord, Reason, Rejected
from core.outputs import Projected
from operators.aggregates import KMV_K, kmv_estimate, stable_hash
from operators.windows import (
    Session,
    SessionParams,
    Sliding,
    SlidingParams,
    Tumbling,
    TumblingParams,
)

LATENESS = 5_000
SKETCH_K = 1024  # the hashes a KMV sketch keeps: below that many, its answer is exact
AGGREGATES = {
    "n": "count",
    "total": {"sum": "data.amount"},
    "low": {"min": "data.amount"},
    "high": {"max": "data.amount"},
    "mean": {"avg": "data.amount"},
    "buyers": {"count_distinct": "data.buyer"},
    "approx_buyers": {"approx_count_distinct": "data.buyer"},
    "top": {"top_k": {"items": "data.items", "key": "sku", "weight": "qty", "k": 3}},
}


def envelope(partition, offset, ts, group, amount, buyer, items):
    data = {"group": group, "amount": amount, "buyer": buyer, "items": items}
    command = Command(id=f"{partition}-{offset}", type="t", aggregate_id="a", ts=ts, v=1, data=data)
    return Envelope(LogRecord(partition, offset, ts, b"a", b""), command)


#: one event's draws, built once: a strategy built inside the composite is built and validated
#: again at every draw, which cost most of these tests' time
_EVENT = st.tuples(
    st.integers(0, 20_000),
    st.integers(0, LATENESS),
    st.sampled_from(["a", "b"]),
    st.floats(-100, 100, allow_nan=False).map(lambda x: round(x, 2)),
    st.sampled_from(["x", "y", "z", "w"]),
    st.lists(
        st.fixed_dictionaries({"sku": st.sampled_from("pqrs"), "qty": st.integers(1, 5)}),
        max_size=3,
    ),
)
_CUTS = st.lists(st.integers(1, 7), min_size=1, max_size=5)


@st.composite
def streams(draw):
    """Per partition: event times that go back at most LATENESS behind the newest so far."""
    partitions = draw(st.integers(1, 3))
    out = []
    for p in range(partitions):
        n = draw(st.integers(0, 40))
        base = 0
        for offset in range(n):
            step, back, group, amount, buyer, items = draw(_EVENT)
            base += step
            ts = max(0, base - back)
            out.append(envelope(p, offset, ts, group, amount, buyer, items))
    cuts = draw(_CUTS)
    return out, cuts


def run(window, events, cuts):
    """Feed each partition's events in log order, cut into batches of varying sizes."""
    rows, rejects = [], []
    by_partition = defaultdict(list)
    for e in events:
        by_partition[e.record.partition].append(e)
    for part_events in by_partition.values():
        state = window.restore(None)
        i = k = 0
        while i < len(part_events):
            size = cuts[k % len(cuts)]
            k += 1
            batch = part_events[i : i + size]
            i += size
            for out in window.process(state, batch):
                (rows if isinstance(out, Projected) else rejects).append(out)
            state = window.restore(window.snapshot(state))  # as after a restart
    return rows, rejects


def merged(window, rows):
    """What the stable view computes: the newest version of each partial row, merged across
    partitions and panes by window and group."""
    names = [c for c, _ in window.table.columns]
    latest = {}
    for p in rows:
        r = dict(zip(names, p.row, strict=True))
        key = (r["window_start"], r["window_end"], r.get("group"), r["partition"], r["pane"])
        if key not in latest or r["version"] > latest[key]["version"]:
            latest[key] = r
    out = {}
    for (start, end, group, *_), r in latest.items():
        acc = out.setdefault(
            (start, end, group),
            {
                "n": 0,
                "total": 0.0,
                "low": None,
                "high": None,
                "s": 0.0,
                "c": 0,
                "buyers": set(),
                "h": set(),
                "top": defaultdict(float),
            },
        )
        acc["n"] += r["n"]
        acc["total"] += r["total"]
        if r["low"] is not None:
            acc["low"] = r["low"] if acc["low"] is None else min(acc["low"], r["low"])
        if r["high"] is not None:
            acc["high"] = r["high"] if acc["high"] is None else max(acc["high"], r["high"])
        acc["s"] += r["mean__sum"]
        acc["c"] += r["mean__count"]
        acc["buyers"] |= set(r["buyers"])
        acc["h"] |= set(r["approx_buyers"])
        for sku, w in r["top"].items():
            acc["top"][sku] += w
    return {k: finish(v, approx_buyers=kmv(v["h"])) for k, v in out.items()}


def kmv(hashes):
    """A KMV sketch's estimate of the distinct values behind its hashes, written here again."""
    smallest = sorted(set(hashes))[:SKETCH_K]
    if len(smallest) < SKETCH_K:
        return len(smallest)
    return int((SKETCH_K - 1) / (smallest[-1] / 2**64))


def finish(acc, approx_buyers):
    return {
        "n": acc["n"],
        "total": round(acc["total"], 6),
        "low": acc["low"],
        "high": acc["high"],
        "mean": round(acc["s"] / acc["c"], 6) if acc["c"] else None,
        "buyers": len(acc["buyers"]),
        "approx_buyers": approx_buyers,
        "top": sorted(acc["top"].items(), key=lambda kv: (-kv[1], kv[0]))[:3],
    }


def batch(events, windows_of):
    """The batch recomputation: every event into every window it falls in, at once."""
    out = {}
    for e in events:
        d = e.command.data
        for start, end in windows_of(e):
            acc = out.setdefault(
                (start, end, d["group"]),
                {
                    "n": 0,
                    "total": 0.0,
                    "low": None,
                    "high": None,
                    "s": 0.0,
                    "c": 0,
                    "buyers": set(),
                    "top": defaultdict(float),
                },
            )
            acc["n"] += 1
            acc["total"] += d["amount"]
            acc["low"] = d["amount"] if acc["low"] is None else min(acc["low"], d["amount"])
            acc["high"] = d["amount"] if acc["high"] is None else max(acc["high"], d["amount"])
            acc["s"] += d["amount"]
            acc["c"] += 1
            acc["buyers"].add(d["buyer"])
            for item in d["items"]:
                acc["top"][item["sku"]] += item["qty"]
    assert all(len(v["buyers"]) < SKETCH_K for v in out.values())  # so exact is the answer
    return {k: finish(v, approx_buyers=len(v["buyers"])) for k, v in out.items()}


def assert_same(got, want):
    assert got.keys() == want.keys()
    for key in want:
        g, w = got[key], want[key]
        for column in w:
            if isinstance(w[column], float):
                assert g[column] == pytest.approx(w[column], abs=1e-6), (key, column)
            else:
                assert g[column] == w[column], (key, column)


def params(cls, **kw):
    return msgspec.convert(
        {"group_by": {"group": "data.group"}, "lateness": LATENESS, "aggregates": AGGREGATES, **kw},
        cls,
    )


@settings(max_examples=150, deadline=None)
@given(streams())
def test_tumbling_equals_batch(stream):
    events, cuts = stream
    window = Tumbling("w", params(TumblingParams, size=10_000))
    rows, rejects = run(window, events, cuts)
    assert rejects == []
    size = 10_000
    want = batch(
        events, lambda e: [(e.command.ts // size * size, e.command.ts // size * size + size)]
    )
    assert_same(merged(window, rows), want)


@settings(max_examples=150, deadline=None)
@given(streams())
def test_sliding_equals_batch(stream):
    events, cuts = stream
    window = Sliding("w", params(SlidingParams, size=30_000, hop=10_000))
    rows, rejects = run(window, events, cuts)
    assert rejects == []

    def windows_of(e):
        ts = e.command.ts
        return [
            (s, s + 30_000)
            for s in range(ts // 10_000 * 10_000 - 20_000, ts + 1, 10_000)
            if s <= ts < s + 30_000
        ]

    assert_same(merged(window, rows), batch(events, windows_of))


@settings(max_examples=150, deadline=None)
@given(streams())
def test_sessions_equal_batch_per_partition(stream):
    """Sessions are cut per log partition (group by the aggregate for global sessions): the
    batch recomputation sorts each partition's events by time and splits at gaps."""
    events, cuts = stream
    gap = 15_000
    window = Session("w", params(SessionParams, gap=gap))
    # close every session: a last event far ahead on each partition, in its own group
    closing = [
        envelope(p, 10_000, 10**9, "closer", 0.0, "x", [])
        for p in {e.record.partition for e in events}
    ]
    rows, rejects = run(window, events + closing, cuts)
    assert rejects == []
    sessions = {}
    by_key = defaultdict(list)
    for e in events:
        by_key[(e.record.partition, e.command.data["group"])].append(e)
    for evs in by_key.values():
        evs.sort(key=lambda e: e.command.ts)
        current = [evs[0]]
        for e in evs[1:]:
            if e.command.ts - current[-1].command.ts < gap:
                current.append(e)
            else:
                sessions.setdefault(id(current), current)
                current = [e]
        sessions.setdefault(id(current), current)
    # the view merges sessions of different partitions that happen to share their bounds
    same_bounds = defaultdict(list)
    for evs in sessions.values():
        same_bounds[(evs[0].command.ts, evs[-1].command.ts + gap)].extend(evs)
    want = {}
    for (start, end), evs in same_bounds.items():
        want.update(batch(evs, lambda e, s=start, t=end: [(s, t)]))
    got = {k: v for k, v in merged(window, rows).items() if k[2] != "closer"}
    assert_same(got, want)


def test_late_commands_go_to_the_dlq_or_to_a_pane():
    early = envelope(0, 0, 100_000, "a", 1.0, "x", [])
    late = envelope(0, 1, 100_000 - LATENESS - 1, "a", 2.0, "y", [])
    window = Tumbling("w", params(TumblingParams, size=10_000))
    state = window.restore(None)
    window.process(state, [early])
    (rejected,) = window.process(state, [late])
    assert isinstance(rejected, Rejected)
    assert rejected.reason is Reason.LATE
    assert "allowed lateness is 5.0s" in rejected.detail

    window = Tumbling("w", params(TumblingParams, size=10_000, late="update"))
    state = window.restore(None)
    window.process(state, [early])
    (pane,) = window.process(state, [late])
    row = dict(zip([c for c, _ in window.table.columns], pane.row, strict=True))
    assert row["pane"] == 1  # the late command's offset: a row of its own beside the window
    assert row["n"] == 1 and row["window_start"] == 90_000


def test_closed_windows_leave_the_state():
    window = Tumbling("w", params(TumblingParams, size=10_000))
    state = window.restore(None)
    window.process(state, [envelope(0, i, i * 10_000, "a", 1.0, "x", []) for i in range(100)])
    assert len(state.open) <= 2  # only windows the lateness can still reach


def test_kmv_sketch_is_exact_below_k_and_close_above():
    assert kmv_estimate({stable_hash(i) for i in range(100)}) == 100
    estimate = kmv_estimate({stable_hash(i) for i in range(50_000)})
    assert abs(estimate - 50_000) / 50_000 < 0.1
    assert KMV_K == 1024


@pytest.mark.parametrize(
    ("cls", "kw", "message"),
    [
        (SlidingParams, {"size": "5m", "hop": "2m"}, "positive multiple of hop"),
        (TumblingParams, {"size": "soon"}, "size: 'soon' is not a duration"),
        (
            TumblingParams,
            {"aggregates": {"n": {"median": "data.x"}}},
            "unknown aggregation 'median'",
        ),
        (TumblingParams, {"aggregates": {"n": {"sum": 3}}}, "n.sum: expected a field path"),
        (TumblingParams, {"group_by": {"partition": "data.x"}}, "'partition' is used twice"),
        (TumblingParams, {"time": "data..x"}, "is not a field path"),
    ],
)
def test_bad_window_params_are_refused(cls, kw, message):
    built = {"Tumbling": Tumbling, "Sliding": Sliding}[cls.__name__.removesuffix("Params")]
    with pytest.raises(ValueError, match=message):
        built("w", params(cls, **kw))


def _odd(envelope, when, amount):
    """The envelope with its event time at `data.when` and its amount replaced."""
    data = {**envelope.command.data, "when": when, "amount": amount}
    return Envelope(envelope.record, msgspec.structs.replace(envelope.command, data=data))


#: an event time that is none, or late (0); an amount too large for a float (reading it raises)
_when = st.one_of(st.none(), st.just(True), st.just("12"), st.just(1.5), st.just(0))
_amount = st.one_of(st.just(10**400), st.just("7"), st.just(None), st.just(2.5))


@settings(max_examples=100, deadline=None)
@given(
    streams(),
    st.dictionaries(st.integers(0, 120), st.tuples(_when, _amount), max_size=6),
    st.sampled_from(["dlq", "update"]),
    st.booleans(),
)
def test_fixed_windows_read_by_columns_equal_a_command_at_a_time(stream, odd, late, sliding):
    """`_Fixed.process` reads a batch by columns, and a command at a time (`_prepare`) when
    that raised: the same outputs (rows, late panes, rejects and failures) and the same state."""
    events, cuts = stream
    events = [
        _odd(e, *odd.get(n, (e.command.ts, e.command.data["amount"]))) for n, e in enumerate(events)
    ]
    kw = {"size": 30_000, "hop": 10_000} if sliding else {"size": 10_000}
    cls, params_cls = (Sliding, SlidingParams) if sliding else (Tumbling, TumblingParams)
    by_columns = cls("w", params(params_cls, time="data.when", late=late, **kw))
    each = cls("w", params(params_cls, time="data.when", late=late, **kw))

    def unreadable(batch):
        raise ValueError("read a command at a time")

    each._times = unreadable
    for p in {e.record.partition for e in events}:
        part = [e for e in events if e.record.partition == p]
        fast, slow = by_columns.restore(None), each.restore(None)
        for i in range(0, len(part), cuts[0]):
            batch = part[i : i + cuts[0]]
            assert by_columns.process(fast, batch) == each.process(slow, batch)
            assert by_columns.snapshot(fast) == each.snapshot(slow)


def test_fixed_windows_read_a_clean_batch_by_columns(monkeypatch):
    """The column path is taken (not only the fallback) on a batch where nothing raises."""
    window = Tumbling("w", params(TumblingParams, size=10_000))
    monkeypatch.setattr(Tumbling, "_prepare", None)  # a command at a time would raise
    batch = [envelope(0, i, i * 1_000, "a", 1.0, "x", []) for i in range(25)]
    outputs = window.process(window.restore(None), batch)
    names = [c for c, _ in window.table.columns]
    assert [type(o) for o in outputs] == [Projected] * 3
    assert sum(dict(zip(names, o.row, strict=True))["n"] for o in outputs) == 25
