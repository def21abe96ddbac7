"""The checkers must be able to fail before their passing means anything: a planted dropped
command fails the oracle check, and a batch written twice without its token fails the ledger
check, while the same batch sent again with its token is dropped by ClickHouse."""

import msgspec
from kafka import KafkaConsumer, TopicPartition

from core.envelope import decode_command
from dataflows.spec import parse_pipeline
from examples.orders.generator import OrderGenerator
from sinks.clickhouse import create_projection_table
from sinks.ddl import create_database
from tests.conftest import produce, renamed
from tests.oracles import ORDER_COLUMNS, diff_orders, expected_orders


def log_versions(brokers, topic, partitions):
    """{order_id: [offsets of its commands]}, read back from the log."""
    consumer = KafkaConsumer(bootstrap_servers=brokers, enable_auto_commit=False)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning()
    ends = consumer.end_offsets(tps)
    versions: dict[str, list[int]] = {}
    while any(consumer.position(tp) < ends[tp] for tp in tps):
        for records in consumer.poll(timeout_ms=500).values():
            for r in records:
                versions.setdefault(decode_command(r.value).aggregate_id, []).append(r.offset)
    consumer.close()
    return versions


def ledger_problems(store, db, versions):
    """No row (order_id, version) is stored twice, and each order's newest stored version is the
    offset of its last command in the log. Read with merges stopped by the caller, since a merge
    folds duplicates away (and an insert already folds the versions of one key inside it:
    ClickHouse's optimize_on_insert), so only separate inserts of the same row show here."""
    raw = store.query(
        f"SELECT order_id, version, count() FROM `{db}`.orders GROUP BY order_id, version"
    )
    problems = [f"{(o, v)} written {n} times" for o, v, n in raw.result_rows if n != 1]
    newest: dict[str, int] = {}
    for o, v, _ in raw.result_rows:
        newest[o] = max(newest.get(o, -1), v)
    for order, offsets in versions.items():
        if newest.get(order) != max(offsets):
            problems.append(f"{order}: newest version {newest.get(order)}, log says {max(offsets)}")
    problems += [f"{o} is not in the log" for o in newest.keys() - versions.keys()]
    return problems


def test_a_dropped_command_fails_the_oracle_check(
    brokers, make_topic, orders_pipeline, run_bounded, store
):
    topic = make_topic(partitions=2)
    commands = OrderGenerator(seed=81).take(2000)
    produce(brokers, topic, commands)
    victim = next(c for c in commands if c.type == "order.shipped")
    # the plant: a pipeline with a bug that loses one command
    spec = msgspec.yaml.encode(msgspec.to_builtins(orders_pipeline.spec)).decode()
    spec = spec.replace(
        "- order_state", f"- order_state\n- drop_if:\n    where: {{id: {victim.id}}}"
    )
    buggy = renamed(parse_pipeline(spec, "buggy.yaml"), orders_pipeline.name + "_buggy")
    run_bounded(buggy, topic)
    rows = list(
        store.query(
            f"SELECT {ORDER_COLUMNS} FROM `{buggy.deployment}`.orders FINAL"
        ).named_results()
    )
    problems = diff_orders(expected_orders(commands), rows)
    assert any(victim.aggregate_id in p and "status" in p for p in problems), problems

    run_bounded(orders_pipeline, topic)  # the real pipeline passes the same check
    rows = list(
        store.query(
            f"SELECT {ORDER_COLUMNS} FROM `{orders_pipeline.deployment}`.orders FINAL"
        ).named_results()
    )
    assert diff_orders(expected_orders(commands), rows) == []


def test_a_batch_written_twice_fails_the_ledger_unless_its_token_drops_it(
    brokers, make_topic, orders_pipeline, run_bounded, store
):
    topic = make_topic(partitions=2)
    produce(brokers, topic, OrderGenerator(seed=82).take(2000))
    db = orders_pipeline.deployment
    # merges would fold a key's versions together before the ledger reads them: stop them
    store.command(create_database(db))
    create_projection_table(store, db, orders_pipeline.projections[0].output.table)
    store.command(f"SYSTEM STOP MERGES `{db}`.orders")
    try:
        run_bounded(orders_pipeline, topic)
        versions = log_versions(brokers, topic, 2)
        assert ledger_problems(store, db, versions) == []

        batch = store.query(f"SELECT * FROM `{db}`.orders ORDER BY version LIMIT 50")
        rows, names = batch.result_rows, list(batch.column_names)
        token = {"insert_deduplication_token": "planted:0-49"}
        store.insert(f"`{db}`.orders", rows, column_names=names, settings=token)
        twice = ledger_problems(store, db, versions)
        assert len(twice) == 50 and all("written 2 times" in p for p in twice)

        store.insert(f"`{db}`.orders", rows, column_names=names, settings=token)
        assert ledger_problems(store, db, versions) == twice  # same token: dropped by ClickHouse
    finally:
        store.command(f"SYSTEM START MERGES `{db}`.orders")
