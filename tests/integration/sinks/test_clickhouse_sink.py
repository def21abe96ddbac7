"""The projection sink under faults injected at its client boundary: slow and failing inserts
are retried with the same token (never sent to the DLQ), memory stays bounded while they fail,
and a row ClickHouse refuses for its content is isolated and sent to the DLQ."""

import time

from deploy.deployment import State
from examples.orders.generator import OrderGenerator
from tests.conftest import produce
from tests.faults import FaultPlan
from tests.integration.dataflows.test_bad_input import read_dlq
from tests.oracles import ORDER_COLUMNS, diff_orders, expected_orders


def test_a_slow_failing_sink_loses_nothing_and_stays_bounded(
    brokers, make_topic, orders_pipeline, run_bounded, store
):
    topic = make_topic(partitions=3)
    commands = OrderGenerator(seed=41).take(20_000)
    produce(brokers, topic, commands)
    plan = FaultPlan(fail_for_s=4.0, delay_s=0.02)

    started = time.monotonic()
    deployment = run_bounded(orders_pipeline, topic, client_factory=plan.factory())
    assert deployment.state is State.COMPLETED
    assert time.monotonic() - started > 4.0  # it waited for ClickHouse to come back

    db = orders_pipeline.deployment
    rows = list(store.query(f"SELECT {ORDER_COLUMNS} FROM `{db}`.orders FINAL").named_results())
    assert diff_orders(expected_orders(commands), rows) == []
    assert plan.failures >= 3
    # every retry resent the same batch under the same token
    tried: dict[str, set[int]] = {}
    for _, count, token in plan.attempts:
        tried.setdefault(token, set()).add(count)
    assert all(len(sizes) == 1 for sizes in tried.values())
    assert any(sum(1 for _, _, t in plan.attempts if t == token) > 1 for token in tried), (
        "no insert was retried"
    )
    # the bound: one insert never holds more than a sink buffer plus one source batch
    biggest = max(count for _, count, _ in plan.attempts)
    assert biggest <= 50_000 + 5_000
    # infrastructure errors are retried, never sent to the DLQ
    assert read_dlq(brokers, topic, expect=1, wait_s=2) == []


def test_a_row_clickhouse_refuses_goes_to_the_dlq_and_the_rest_is_written(
    brokers, make_topic, orders_pipeline, run_bounded, store
):
    topic = make_topic(partitions=2)
    commands = OrderGenerator(seed=42).take(3000)
    produce(brokers, topic, commands)
    victim = next(c.aggregate_id for c in commands if c.type == "order.placed")
    plan = FaultPlan(refuse=lambda row: row[0] == victim)  # every row of one order

    run_bounded(orders_pipeline, topic, client_factory=plan.factory())

    db = orders_pipeline.deployment
    rows = list(store.query(f"SELECT {ORDER_COLUMNS} FROM `{db}`.orders FINAL").named_results())
    expected = expected_orders(commands)
    del expected[victim]
    assert diff_orders(expected, rows) == []
    dlq = read_dlq(brokers, topic, expect=3)
    victim_rows = [c for c in commands if c.aggregate_id == victim]
    assert len(dlq) == len(victim_rows)
    for record in dlq:
        headers = dict(record.headers)
        assert headers["reason"] == b"unwritable_row"
        assert headers["step"] == b"orders/sink"
        assert b"TYPE_MISMATCH" in headers["detail"]
        assert victim.encode() in record.value
