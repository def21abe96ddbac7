"""Whole dataflows in memory: Bytewax's testing source and sink, no broker, no ClickHouse."""

from bytewax.testing import TestingSink, TestingSource, run_main

from commands.envelope import LogRecord, Reason, encode_command
from commands.generator import OrderGenerator
from dataflows.builder import Observers, build_dataflow
from dataflows.spec import parse_pipeline

SPEC = """
name: shop
version: 1
filters: [validate]
projections:
  - name: orders
    steps: [order_state]
  - name: orders_copy
    steps: [{order_state: {}, id: order_state_copy}]
"""


def records(commands, partitions=3):
    offsets = [0] * partitions
    out = []
    for c in commands:
        p = hash(c.aggregate_id) % partitions
        out.append(LogRecord(p, offsets[p], c.ts, c.aggregate_id.encode(), encode_command(c)))
        offsets[p] += 1
    return out


def run(items, spec=SPEC):
    pipeline = parse_pipeline(spec, "shop.yaml")
    rows: dict[str, list] = {p.name: [] for p in pipeline.projections}
    rejects: list = []
    counted: list = []
    flow = build_dataflow(
        pipeline,
        TestingSource(items, batch_size=7),
        lambda name: TestingSink(rows[name]),
        TestingSink(rejects),
        Observers(on_rejected=lambda step, reason, n: counted.append((step, reason, n))),
    )
    run_main(flow)
    return rows, rejects, counted


def test_every_command_becomes_a_row_in_every_projection():
    commands = OrderGenerator(seed=4).take(2000)
    rows, rejects, _ = run(records(commands))
    assert rejects == []
    for name in ("orders", "orders_copy"):
        assert len(rows[name]) == len(commands)
        # sink items are (partition key, (offset, row)); the row's version is its offset
        for key, (offset, row) in rows[name]:
            assert int(key) in (0, 1, 2)
            assert row[-1] == offset


def test_bad_records_go_to_the_rejects_with_reasons_and_the_rest_flows():
    commands = OrderGenerator(seed=4).take(300)
    good = records(commands, partitions=1)
    bad = [
        LogRecord(0, 1000, 0, None, b"not json"),
        LogRecord(0, 1001, 0, None, b"\xff\xff"),
        LogRecord(0, 1002, 0, None, b'{"id": "x"}'),
        LogRecord(
            0, 1003, 0, None, b'{"id":"x","type":"x.y","aggregate_id":"a","ts":1,"v":1,"data":{}}'
        ),
    ]
    paid_unknown = next(c for c in commands if c.type == "order.paid")
    orphan = LogRecord(
        0,
        1004,
        0,
        None,
        encode_command(paid_unknown).replace(paid_unknown.aggregate_id.encode(), b"o-nowhere"),
    )
    rows, rejects, counted = run(good + bad + [orphan])
    reasons = sorted((r.step, r.reason) for r in rejects)
    assert reasons == sorted(
        [
            ("decode", Reason.NOT_JSON),
            ("decode", Reason.NOT_UTF8),
            ("decode", Reason.WRONG_SHAPE),
            ("validate", Reason.UNKNOWN_TYPE),
            # the orphan payment reaches both projections, and each refuses it
            ("order_state", Reason.INVALID_TRANSITION),
            ("order_state_copy", Reason.INVALID_TRANSITION),
        ]
    )
    assert len(counted) == len(rejects)
    assert len(rows["orders"]) == len(commands)
