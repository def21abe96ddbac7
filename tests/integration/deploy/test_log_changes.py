"""The log as other clients change it, under a runtime in this process: transactions committed
and aborted, partitions added while a deployment runs, and a record no restart gets past."""

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewPartitions

from core.envelope import encode_command
from dataflows.spec import parse_pipeline
from deploy import supervisor
from deploy.model import ReplayRequest, State
from deploy.runtime import Runtime
from examples.orders.generator import OrderGenerator
from tests.conftest import produce
from tests.integration.dataflows.test_bad_input import read_dlq
from tests.integration.deploy.test_runtime import wait_for
from tests.oracles import ORDER_COLUMNS, diff_orders, expected_orders


def orders_spec(
    name, filters="[{validate: {schemas: examples.orders.schemas:SCHEMAS}}, dedupe, order_state]"
):
    return f"""
name: {name}
version: 1
modules: [tests.fixtures.user_filters, examples.orders.order_state]
filters: {filters}
projections:
  - name: orders
    steps: [order_rows]
"""


def orders_rows(runtime, database):
    sql = f"SELECT {ORDER_COLUMNS} FROM `{database}`.orders FINAL"
    return list(runtime.client.query(sql).named_results())


def test_only_committed_transactions_are_projected_and_bounded_runs_end(
    settings, brokers, make_topic, unique
):
    topic = make_topic(partitions=2)
    committed_gen, aborted_gen = OrderGenerator(seed=91), OrderGenerator(seed=191)
    committed, aborted = [], []
    producer = KafkaProducer(bootstrap_servers=brokers, transactional_id=f"tx-{unique}")
    producer.init_transactions()
    for i in range(6):  # the log ends with a commit marker in each partition
        abort = i % 3 == 1
        batch = (aborted_gen if abort else committed_gen).take(150)
        producer.begin_transaction()
        for c in batch:
            producer.send(topic, key=c.aggregate_id.encode(), value=encode_command(c))
        if abort:
            producer.abort_transaction()
            aborted += batch
        else:
            producer.commit_transaction()
            committed += batch
    producer.close()

    spec = orders_spec(f"tx{unique}")
    with Runtime(settings.with_(topic=topic), brokers) as runtime:
        name = runtime.ensure(parse_pipeline(spec, "tx.yaml"), spec, stop_now=True).name
        ended = wait_for(lambda: runtime.settled(name), timeout_s=120)
        assert ended.state is State.COMPLETED  # `cqrs run --until-caught-up` ends
        status = runtime.get_deployment(name)
        assert sum(status.lag.values()) == 0 and status.done == status.total > 0
        assert diff_orders(expected_orders(committed), orders_rows(runtime, name)) == []
        # a bounded replay of the same log ends too, and projects the same
        replay = runtime.replay(
            ReplayRequest(spec, "tx.yaml", start="earliest", into=f"tx_replay_{unique}")
        )
        ended = wait_for(lambda: runtime.settled(replay.name), timeout_s=120)
        assert ended.state is State.COMPLETED
        replayed = runtime.get_deployment(replay.name)
        assert replayed.done == replayed.total and sum(replayed.lag.values()) == 0
        rows = orders_rows(runtime, replay.name)
        assert diff_orders(expected_orders(committed), rows) == []
        assert not {r["order_id"] for r in rows} & {c.aggregate_id for c in aborted}
    assert read_dlq(brokers, topic, expect=1, wait_s=2) == []


def test_partitions_added_while_a_deployment_runs_are_taken_in(
    settings, brokers, make_topic, unique
):
    topic = make_topic(partitions=2)
    before, after = OrderGenerator(seed=92).take(300), OrderGenerator(seed=93).take(300)
    produce(brokers, topic, before)
    spec = orders_spec(f"grow{unique}")
    with Runtime(settings.with_(topic=topic), brokers) as runtime:
        name = runtime.ensure(parse_pipeline(spec, "grow.yaml"), spec).name
        wait_for(lambda: runtime.get_deployment(name).done == len(before), timeout_s=60)
        admin = KafkaAdminClient(bootstrap_servers=brokers)
        admin.create_partitions({topic: NewPartitions(total_count=4)})
        admin.close()
        # orders whose whole life comes after the change: each on one partition, in order
        produce(brokers, topic, after)
        want = expected_orders(before + after)
        wait_for(lambda: diff_orders(want, orders_rows(runtime, name)) == [], timeout_s=90)
        status = wait_for(
            lambda: (s := runtime.get_deployment(name)).done == len(before + after) and s,
            timeout_s=30,
        )
        assert sorted(status.lag) == [0, 1, 2, 3] and sum(status.lag.values()) == 0
        assert sorted(status.next) == [0, 1, 2, 3]
        assert status.next[2] + status.next[3] > 0  # the new ones carried commands
        events = [e.event for e in runtime.records.history(f"grow{unique}")]
        assert "took in new partitions [2, 3]" in events


def test_a_record_no_restart_gets_past_stops_the_deployment_until_skipped(
    settings, brokers, make_topic, unique, monkeypatch
):
    monkeypatch.setattr(supervisor, "_FIRST_RESTART_S", 0.05)
    topic = make_topic(partitions=1)
    commands = OrderGenerator(seed=94).take(200)
    produce(brokers, topic, commands)
    at = len(commands) - 1  # the last command: skipping it breaks no later one
    crash = f"crash_at: {{partition: 0, offset: {at}}}"
    spec = orders_spec(
        f"stuck{unique}",
        f"[{crash}, {{validate: {{schemas: examples.orders.schemas:SCHEMAS}}}}, dedupe, order_state]",
    )
    with Runtime(settings.with_(topic=topic), brokers) as runtime:
        name = runtime.ensure(parse_pipeline(spec, "stuck.yaml"), spec).name
        ended = wait_for(lambda: runtime.settled(name), timeout_s=120)
        error = str(ended.error)
        assert f"partition 0 offset {at}" in error, error
        assert f"cqrs skip {name} --partition 0 --offset {at}" in error
        assert runtime.get_deployment(name).state == "failed"
        runtime.skip(name, 0, at)
        wait_for(lambda: runtime.get_deployment(name).done == len(commands), timeout_s=60)
        rows = orders_rows(runtime, name)
        assert diff_orders(expected_orders(commands[:-1]), rows) == []
    (letter,) = read_dlq(brokers, topic, expect=1)
    headers = {k: v.decode() for k, v in letter.headers}
    assert (headers["reason"], headers["source.offset"]) == ("skipped_by_operator", str(at))
    assert letter.value == encode_command(commands[-1])  # its bytes, as logged
