"""No record stops a pipeline: what a step raises on one command sends it to the DLQ
(`filter_error`), the rest of its batch goes on, and partition-local state is as if the command
had never come."""

from pathlib import Path
from typing import Any
from unittest.mock import patch

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from core.envelope import Command, LogRecord, Polled, Reason, encode_command
from dataflows import executor
from dataflows.executor import PartitionPipeline
from dataflows.spec import parse_pipeline
from examples.orders.generator import OrderGenerator

SPEC = """
name: guard
version: 1
modules: [tests.fixtures.user_filters]
filters: [boom_map, boom_count, dedupe]
projections:
  - name: per_minute
    steps:
      - tumbling:
          size: 1m
          group_by: {region: data.region}
          aggregates: {n: count, total: {sum: data.amount}, skus: {count_distinct: data.sku}}
"""


def record(offset, id_, data, ts=60_000, log_time=None):
    command = Command(id=id_, type="t", aggregate_id="a", ts=ts, v=1, data=data)
    return LogRecord(0, offset, ts if log_time is None else log_time, b"a", encode_command(command))


def run(records, spec=SPEC):
    pipeline = PartitionPipeline(parse_pipeline(spec, "guard.yaml"))
    out = pipeline.run(Polled(0, records, records[-1].offset + 1))
    return pipeline, out


def good(n, start=0):
    return [
        record(start + i, f"c{start + i}", {"region": "eu", "amount": 1.5, "sku": f"s{i % 3}"})
        for i in range(n)
    ]


def test_a_raising_step_sends_one_command_to_the_dlq_and_the_batch_goes_on():
    bad = [
        record(10, "boom-1", {"region": "eu", "amount": 1.0}),  # the stateless step raises
        record(11, "c11", {"region": "eu", "amount": 10**400}),  # float() overflows in sum
        record(12, "c12", {"region": "eu", "sku": {"a": 1}, "amount": 1.0}),  # fine: str(dict)
    ]
    _, out = run([*good(5), *bad, *good(5, start=20)])
    reasons = {r.record.offset: (r.reason, r.step) for r in out.rejects}
    assert reasons == {
        10: (Reason.FILTER_ERROR, "boom_map"),
        11: (Reason.FILTER_ERROR, "per_minute/tumbling"),
    }
    assert "OverflowError" in next(r.detail for r in out.rejects if r.record.offset == 11)
    (row,) = out.items["per_minute"]
    # n, total (sum), skus (count_distinct): 11 commands, the overflowing one left out
    assert row[5:8] == (11, 16.0, ["s0", "s1", "s2", "{'a': 1}"])


def test_a_raising_partition_local_step_leaves_its_state_as_before():
    """boom_count counts in place and raises after counting: the executor replays the batch
    from a snapshot, so the command it raised on is not counted."""
    records = [*good(3), record(3, "boom-x", {"region": "eu"}), *good(3, start=4)]
    pipeline = PartitionPipeline(parse_pipeline(SPEC.replace("boom_map, ", ""), "guard.yaml"))
    out = pipeline.run(Polled(0, records, 7))
    assert [(r.record.offset, r.reason) for r in out.rejects] == [(3, Reason.FILTER_ERROR)]
    assert pipeline.snapshot()["boom_count"] == {"t": 6}
    # dedupe after it saw the six others once, and the window counted them once
    assert out.items["per_minute"][0][5] == 6


def test_decoding_a_nesting_too_deep_is_a_filter_error():
    deep = b'{"id":"d","type":"t","aggregate_id":"a","ts":1,"v":1,"data":' + b'{"a":' * 1000
    deep += b"1" + b"}" * 1001
    records = [*good(2), LogRecord(0, 2, 60_000, b"a", deep), *good(2, start=3)]
    _, out = run(records)
    (reject,) = out.rejects
    assert (reject.reason, reject.step) == (Reason.FILTER_ERROR, "decode")
    assert "RecursionError" in reject.detail
    assert out.items["per_minute"][0][5] == 4


def test_a_command_dated_ahead_of_the_log_cannot_make_later_ones_late():
    """With LogAppendTime the log time is the broker's: one command an hour ahead moves the
    watermark no further than log time + max_future (5s), so the next commands are not late."""
    spec = """
name: forged
version: 1
filters: []
projections:
  - name: per_minute
    steps:
      - tumbling: {size: 1m, lateness: 30s, aggregates: {n: count}}
"""
    now = 10 * 60_000
    ahead = record(0, "f", {"region": "eu", "amount": 1.0}, ts=now + 3_600_000, log_time=now)
    later = [
        record(i, f"l{i}", {"region": "eu", "amount": 1.0}, ts=now + i * 1000, log_time=now + i)
        for i in range(1, 6)
    ]
    pipeline, out = run([ahead, *later], spec)
    assert out.rejects == []
    windows = sorted(row[0] for row in out.items["per_minute"])
    assert sum(row[4] for row in out.items["per_minute"]) == 6
    assert windows == [now, now + 3_600_000]  # the forged one still has its own window
    state = pipeline.snapshot()["per_minute/tumbling"]
    assert state[0] == now + 5_000  # the newest event time, up to log time + max_future


def test_source_rejects_count_and_position_moves_without_records():
    pipeline = PartitionPipeline(parse_pipeline(SPEC, "guard.yaml"))
    out = pipeline.run(Polled(0, [], 42))
    assert (out.first_offset, out.last_offset, out.items["per_minute"]) == (41, 41, [])
    unreadable = msgspec.structs.replace(
        _reject(), record=LogRecord(0, 42, -1, None, None), reason=Reason.UNREADABLE
    )
    out = pipeline.run(Polled(0, good(1, start=43), 44, [unreadable]))
    assert (out.first_offset, out.last_offset) == (42, 43)
    assert out.rejects == [unreadable]


def _reject():
    from core.envelope import Rejected

    return Rejected(LogRecord(0, 0, 0, None, None), "source", Reason.UNREADABLE, "x")


# -- a poll taken in parts -------------------------------------------------------------------

ORDERS = (Path(__file__).parents[3] / "examples" / "orders" / "specs" / "orders.yaml").read_text()
#: orders v1 with a dedupe that forgets within a poll (by ttl and by count): what expires
#: between parts would show
SHORT_MEMORY = ORDERS.replace("ttl: 1h", "ttl: 30ms").replace("max_keys: 100000", "max_keys: 16")
POOL = OrderGenerator(seed=5, step_ms=5).take(40)


@st.composite
def _log(draw: st.DrawFn) -> list[LogRecord]:
    """A partition's records: commands of the orders generator, repeated (duplicates), reusing
    an id with other data (conflicts), dated back (late), with a planted bug, or not commands."""
    records = []
    for offset, (n, kind) in enumerate(
        draw(st.lists(st.tuples(st.integers(0, len(POOL) - 1), st.integers(0, 9)), max_size=60))
    ):
        c = POOL[n]
        if kind == 0:
            c = msgspec.structs.replace(c, data={**c.data, "note": offset})
        elif kind == 1:
            c = msgspec.structs.replace(c, ts=c.ts - 120_000)
        elif kind == 2:
            c = msgspec.structs.replace(c, id=f"boom-{offset}")
        value = b"{not json" if kind == 3 else encode_command(c)
        records.append(LogRecord(0, offset, POOL[n].ts, c.aggregate_id.encode(), value))
    return records


@settings(max_examples=60, deadline=None)
@given(_log(), st.integers(1, 9), st.sampled_from([SHORT_MEMORY, SPEC]))
def test_a_poll_taken_in_parts_gives_what_the_whole_poll_gives(log, part, spec):
    """Outputs, rejects in order, what the observers hear, and the state after two polls: the
    same with parts of a few records as with the whole poll at once."""
    seen = []
    runs = []
    for size in (part, 10**9):
        calls: list[tuple[Any, ...]] = []

        def hear(name: str, calls: list[tuple[Any, ...]] = calls) -> Any:
            return lambda *args: calls.append((name, *args))

        observers = executor.Observers(*(hear(n) for n in ("step", "rej", "skip", "ok", "wm")))
        pipeline = PartitionPipeline(parse_pipeline(spec, "p.yaml"), observers=observers)
        cut = len(log) // 2
        with patch.object(executor, "PART", size):
            outs = [pipeline.run(Polled(0, poll, 99)) for poll in (log[:cut], log[cut:])]
        runs.append((outs, calls, pipeline.snapshot()))
        seen.append(pipeline)
    assert runs[0] == runs[1]
    if spec is SHORT_MEMORY and part < 5:
        assert seen[0]._parted  # dedupe and order_state did take the polls in parts
