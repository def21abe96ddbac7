"""The walking skeleton on real components: generated commands through the real broker, the
orders pipeline in Bytewax, and the `orders` projection in the embedded ClickHouse engine."""

from commands.generator import OrderGenerator
from deploy.deployment import State
from tests.conftest import produce
from tests.oracles import ORDER_COLUMNS, diff_orders, expected_orders


def test_ten_thousand_commands_give_the_expected_orders(
    brokers, make_topic, orders_pipeline, run_bounded, store
):
    topic = make_topic(partitions=6)
    commands = OrderGenerator(seed=11).take(10_000)
    produce(brokers, topic, commands)

    deployment = run_bounded(orders_pipeline, topic)

    assert deployment.state is State.COMPLETED
    db = orders_pipeline.deployment
    rows = list(store.query(f"SELECT {ORDER_COLUMNS} FROM `{db}`.orders FINAL").named_results())
    expected = expected_orders(commands)
    assert diff_orders(expected, rows) == []
    assert len(rows) == len(expected) > 3000


def test_the_oracle_check_catches_a_planted_difference():
    """The checker must be able to fail: one changed status and one missing order."""
    commands = OrderGenerator(seed=11).take(200)
    expected = expected_orders(commands)
    rows = [dict(r) for r in expected.values()]
    rows[0]["status"] = "teleported"
    missing = rows.pop()["order_id"]
    problems = diff_orders(expected, rows)
    assert f"missing order {missing}" in problems
    assert any(p.endswith("got 'teleported'") for p in problems)
