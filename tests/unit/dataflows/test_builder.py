"""Whole dataflows in memory: Bytewax's testing source and sink, no broker, no ClickHouse."""

from collections import Counter

from bytewax.testing import TestingSink, TestingSource, run_main

from commands.log import part_key
from core.envelope import LogRecord, Polled, Reason, encode_command
from core.outputs import Forwarded
from dataflows.builder import build_dataflow
from dataflows.executor import Observers
from dataflows.spec import parse_pipeline
from examples.orders.generator import OrderGenerator

SPEC = """
name: shop
version: 1
modules: [examples.orders.order_state]
filters: [{validate: {schemas: examples.orders.schemas:SCHEMAS}}, dedupe, order_state]
projections:
  - name: orders
    steps: [order_rows]
  - name: paid_per_minute
    steps:
      - select: {where: {type: order.paid}}
      - tumbling: {size: 1m, group_by: {region: order.region}, aggregates: {n: count}}
"""


def records(commands, partitions=3):
    offsets = [0] * partitions
    out = []
    for c in commands:
        p = sum(c.aggregate_id.encode()) % partitions
        key = c.aggregate_id.encode()
        out.append(LogRecord(p, offsets[p], c.ts, key, encode_command(c)))
        offsets[p] += 1
    return out


class Tally:
    def __init__(self):
        self.steps = Counter()
        self.rejected = Counter()
        self.skipped = Counter()
        self.accepted = 0

    def observers(self):
        return Observers(
            on_step=self.on_step,
            on_rejected=lambda step, reason, n: self.rejected.update({(step, reason): n}),
            on_skipped=lambda step, why, n: self.skipped.update({(step, why): n}),
            on_accepted=self.on_accepted,
        )

    def on_step(self, step, ins, outs, rejected, skipped):
        self.steps.update({(step, "in"): ins, (step, "out"): outs})

    def on_accepted(self, n):
        self.accepted += n


def batches(items, size=7):
    """What the source emits: (partition key, records) per poll, in log order per partition."""
    out = []
    for p in sorted({r.partition for r in items}):
        mine = [r for r in items if r.partition == p]
        for i in range(0, len(mine), size):
            chunk = mine[i : i + size]
            out.append((part_key(p), Polled(p, chunk, chunk[-1].offset + 1)))
    return out


def run(items, spec=SPEC):
    pipeline = parse_pipeline(spec, "shop.yaml")
    rows = {p.name: [] for p in pipeline.projections}
    rejects, tally = [], Tally()
    flow = build_dataflow(
        pipeline.deployment,
        pipeline,
        TestingSource(batches(items)),
        lambda projection: TestingSink(rows[projection.name]),
        TestingSink(rejects),
        tally.observers(),
    )
    run_main(flow)
    return rows, rejects, tally


def test_every_command_becomes_a_row_and_payments_a_window():
    commands = OrderGenerator(seed=4).take(2000)
    rows, rejects, tally = run(records(commands))
    assert rejects == []
    orders = [(key, row) for key, (_, _, _, batch) in rows["orders"] for row in batch]
    assert len(orders) == len(commands)
    for key, (first, last, log_time, batch) in rows["orders"]:
        assert int(key) in (0, 1, 2)
        assert all(first <= row[-1] <= last for row in batch)  # the version is the log offset
        assert log_time > 0
    # window rows: the newest version of each (window, region, partition) counts the payments
    latest = {}
    for row in (row for _, (_, _, _, batch) in rows["paid_per_minute"] for row in batch):
        start, _end, region, partition, pane, n, version = row
        key = (start, region, partition, pane)
        if key not in latest or version > latest[key][1]:
            latest[key] = (n, version)
    assert sum(n for n, _ in latest.values()) == sum(c.type == "order.paid" for c in commands)
    assert tally.accepted == len(commands)
    assert tally.steps[("decode", "in")] == len(commands)


def test_bad_records_duplicates_and_orphans_are_accounted_for():
    commands = OrderGenerator(seed=4).take(300)
    good = records(commands, partitions=1)
    paid = next(c for c in commands if c.type == "order.paid")
    orphan = (
        encode_command(paid)
        .replace(paid.aggregate_id.encode(), b"o-nowhere")
        .replace(paid.id.encode(), b"id-of-the-orphan")
    )
    bad = [
        LogRecord(0, 1000, 0, b"x", b"not json"),
        LogRecord(0, 1001, 0, b"x", b"\xff\xff"),
        LogRecord(0, 1002, 0, b"x", b'{"id": "x"}'),
        LogRecord(
            0, 1003, 0, b"a", b'{"id":"x","type":"x.y","aggregate_id":"a","ts":1,"v":1,"data":{}}'
        ),
        LogRecord(0, 1004, paid.ts, b"o-nowhere", orphan),
    ]
    duplicate = LogRecord(0, 1005, good[0].timestamp, good[0].key, good[0].value)
    rows, rejects, tally = run(good + bad + [duplicate])
    assert sorted((r.step, r.reason) for r in rejects) == sorted(
        [
            ("decode", Reason.NOT_JSON),
            ("decode", Reason.NOT_UTF8),
            ("decode", Reason.WRONG_SHAPE),
            ("validate", Reason.UNKNOWN_TYPE),
            ("order_state", Reason.INVALID_TRANSITION),  # once, before the projections fan out
        ]
    )
    shared_skips = {k: n for k, n in tally.skipped.items() if "/" not in k[0]}
    assert shared_skips == {("dedupe", "deduplicated"): 1}
    assert tally.skipped[("paid_per_minute/select", "filtered")] > 0  # projection-level
    assert sum(tally.rejected.values()) == len(rejects)
    # the ledger: every consumed record is accepted, rejected or skipped by the shared filters
    consumed = len(good) + len(bad) + 1
    assert consumed == tally.accepted + len(rejects) + sum(shared_skips.values())
    assert sum(len(batch) for _, (_, _, _, batch) in rows["orders"]) == len(commands)


ROUTED = """
name: shop
version: 1
modules: [examples.orders.order_state]
filters:
  - validate: {schemas: examples.orders.schemas:SCHEMAS}
  - order_state
  - route:
      routes:
        - {when: {type: order.paid}, to: [payments]}
      default: [orders]
projections:
  - name: orders
    steps: [order_rows]
  - name: payments
    topic: payments_out
    steps: [forward]
"""


def test_route_sends_each_command_to_its_projections():
    commands = OrderGenerator(seed=9).take(500)
    rows, rejects, _ = run(records(commands), spec=ROUTED)
    paid = sum(c.type == "order.paid" for c in commands)
    assert rejects == []
    assert len(rows["payments"]) == paid
    assert sum(len(batch) for _, (_, _, _, batch) in rows["orders"]) == len(commands) - paid
    assert all(isinstance(f, Forwarded) and b'"order.paid"' in f.value for f in rows["payments"])
