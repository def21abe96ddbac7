"""The walking skeleton on real components: generated commands through the real broker, the
orders pipeline in Bytewax, and the `orders` projection in the embedded ClickHouse engine."""

from deploy.deployment import State
from examples.orders.generator import OrderGenerator
from sinks.progress import read_progress
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


def test_orders_v2_drops_test_customers_converts_to_usd_and_ranks_skus(
    brokers, make_topic, run_bounded, store, unique
):
    from dataflows.spec import load_pipeline
    from sinks.ddl import qualified
    from tests.conftest import REPO, renamed
    from tests.oracles import (
        USD_RATES,
        diff_windows,
        epoch_ms,
        expected_revenue_per_minute,
        expected_top_skus,
        without_test_customers,
    )

    pipeline = renamed(
        load_pipeline(REPO / "examples" / "orders" / "specs" / "orders_v2.yaml"), f"orders_{unique}"
    )
    topic = make_topic(partitions=4)
    commands = OrderGenerator(seed=12, step_ms=200).take(6000)  # about 20 minutes
    produce(brokers, topic, commands)
    run_bounded(pipeline, topic)
    db = pipeline.deployment
    kept = without_test_customers(commands)
    assert len(kept) < len(commands)

    rows = list(store.query(f"SELECT {ORDER_COLUMNS} FROM `{db}`.orders FINAL").named_results())
    assert diff_orders(expected_orders(kept), rows) == []

    def view(name):
        projection = next(p for p in pipeline.projections if p.name == name)
        return list(store.query(projection.projector.view(qualified(db, name))).named_results())

    revenue = view("revenue_per_minute")
    want = expected_revenue_per_minute(kept, usd_rates=USD_RATES)
    assert diff_windows(want, revenue, ("window_start", "region", "currency")) == []
    assert all("revenue_usd" in r for r in revenue)

    top = {
        epoch_ms(r["window_start"]): [(s, w) for s, w in r["top_skus"]] for r in view("top_skus_5m")
    }
    assert top == expected_top_skus(kept)


def test_a_deployment_process_can_own_a_share_of_the_partitions(
    brokers, make_topic, orders_pipeline, run_bounded, store
):
    """How a deployment scales out over processes: each takes some partitions."""
    from kafka import KafkaConsumer, TopicPartition

    from core.envelope import decode_command

    topic = make_topic(partitions=3)
    commands = OrderGenerator(seed=13).take(3000)
    produce(brokers, topic, commands)
    run_bounded(orders_pipeline, topic, partitions=[1])

    consumer = KafkaConsumer(bootstrap_servers=brokers, enable_auto_commit=False)
    tp = TopicPartition(topic, 1)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    end = consumer.end_offsets([tp])[tp]
    mine = []
    while consumer.position(tp) < end:
        mine.extend(decode_command(r.value) for r in consumer.poll(timeout_ms=500).get(tp, []))
    consumer.close()

    db = orders_pipeline.deployment
    rows = list(store.query(f"SELECT {ORDER_COLUMNS} FROM `{db}`.orders FINAL").named_results())
    assert diff_orders(expected_orders(mine), rows) == []
    progress = read_progress(store, db)
    assert {p for by_partition in progress.values() for p in by_partition} == {1}
