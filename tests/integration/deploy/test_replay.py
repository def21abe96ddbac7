"""Replays: rebuild projections from the log into new databases, beside a live deployment."""

import threading
import time

import pytest
from kafka import KafkaAdminClient

from commands.log import CommandLog
from commands.producer import CommandProducer
from core.envelope import decode_command
from core.errors import ConfigError
from dataflows.spec import load_pipeline
from deploy.model import ReplayRequest
from deploy.runtime import Runtime
from examples.orders.generator import OrderGenerator
from sinks.ddl import qualified
from tests.conftest import REPO, produce, read_log, renamed
from tests.integration.deploy.test_runtime import spec_text, wait_for
from tests.oracles import (
    ORDER_COLUMNS,
    USD_RATES,
    diff_orders,
    diff_windows,
    epoch_ms,
    expected_orders,
    expected_revenue_per_minute,
    expected_top_skus,
    without_test_customers,
)

#: enough for a replay of many batches per partition beside live traffic; `make bench` replays 1,000,000
REPLAYED = 200_000


def commands_in(brokers, topic, stop):
    """The commands of the log below the stop offsets, in log order per partition."""
    return [decode_command(r.value) for r in read_log(brokers, topic, stop)]


def end_offsets(brokers, topic):
    with CommandLog(brokers, topic) as log:
        return log.end_offsets()


def check_v2(store, pipeline, database, commands):
    kept = without_test_customers(commands)
    rows = list(
        store.query(f"SELECT {ORDER_COLUMNS} FROM `{database}`.orders FINAL").named_results()
    )
    assert diff_orders(expected_orders(kept), rows) == []

    def view(name):
        projection = next(p for p in pipeline.projections if p.name == name)
        return list(
            store.query(projection.projector.view(qualified(database, name))).named_results()
        )

    want = expected_revenue_per_minute(kept, usd_rates=USD_RATES)
    assert (
        diff_windows(want, view("revenue_per_minute"), ("window_start", "region", "currency")) == []
    )
    top = {
        epoch_ms(r["window_start"]): [tuple(x) for x in r["top_skus"]] for r in view("top_skus_5m")
    }
    assert top == expected_top_skus(kept)


def test_replay_v2_from_earliest_beside_live_v1(settings, brokers, make_topic, store, unique):
    topic = make_topic(partitions=6)
    generator = OrderGenerator(seed=91, step_ms=5)
    produce(brokers, topic, generator.take(REPLAYED))
    settings = settings.with_(topic=topic)
    v1 = renamed(
        load_pipeline(REPO / "examples" / "orders" / "specs" / "orders.yaml"), f"o{unique}"
    )
    v2_spec = (
        (REPO / "examples" / "orders" / "specs" / "orders_v2.yaml")
        .read_text()
        .replace("name: orders", f"name: o{unique}", 1)
    )
    v2 = renamed(
        load_pipeline(REPO / "examples" / "orders" / "specs" / "orders_v2.yaml"), f"o{unique}"
    )

    later = generator.take(20_000)
    stop_feeding = threading.Event()

    def feed():  # producers keep producing throughout
        with CommandProducer(brokers, topic) as producer:
            for i, command in enumerate(later):
                if stop_feeding.is_set():
                    break
                producer.send(command)
                if i % 500 == 499:
                    time.sleep(0.2)
            producer.flush()

    with Runtime(settings, brokers) as runtime:
        runtime.ensure(v1, spec_text(v1))
        feeder = threading.Thread(target=feed)
        feeder.start()
        record = runtime.replay(
            ReplayRequest(v2_spec, "orders_v2.yaml", start="earliest", into=f"r{unique}")
        )
        assert record.stop is not None
        wait_for(lambda: runtime.get_deployment(record.name).state == "completed", timeout_s=400)
        v1_rows_during = store.command(f"SELECT count() FROM `{v1.deployment}`.orders")
        feeder.join()
        # the log read once: the replay's part of it is what lies below its stop offsets
        logged = read_log(brokers, topic, end_offsets(brokers, topic))
        replayed = [r for r in logged if r.offset < record.stop[r.partition]]
        check_v2(store, v2, record.name, [decode_command(r.value) for r in replayed])

        # v1 was never touched by the replay, and kept up with the log
        wanted = expected_orders([decode_command(r.value) for r in logged])

        def v1_caught_up():
            rows = list(
                store.query(
                    f"SELECT {ORDER_COLUMNS} FROM `{v1.deployment}`.orders FINAL"
                ).named_results()
            )
            return diff_orders(wanted, rows) == []

        wait_for(v1_caught_up, timeout_s=120)
        assert store.command(f"SELECT count() FROM `{v1.deployment}`.orders") >= v1_rows_during
        # the broker sees each deployment's lag through a consumer group of its name
        admin = KafkaAdminClient(bootstrap_servers=brokers)
        try:

            def committed():
                offsets = admin.list_group_offsets(v1.deployment).get(v1.deployment, {})
                return sum(o.offset for o in offsets.values())

            total = sum(end_offsets(brokers, topic).values())
            wait_for(lambda: committed() == total, timeout_s=30)
        finally:
            admin.close()


def test_replay_until_a_time_rebuilds_the_past(settings, brokers, make_topic, store, unique):
    topic = make_topic(partitions=3)
    generator = OrderGenerator(seed=92, step_ms=50)
    before, after = generator.take(3000), generator.take(3000)
    produce(brokers, topic, before)
    time.sleep(1.5)
    bound = int(time.time() * 1000)
    time.sleep(1.5)
    produce(brokers, topic, after)
    settings = settings.with_(topic=topic)
    v2_spec = (REPO / "examples" / "orders" / "specs" / "orders_v2.yaml").read_text()
    v2 = load_pipeline(REPO / "examples" / "orders" / "specs" / "orders_v2.yaml")
    with Runtime(settings, brokers) as runtime:
        record = runtime.replay(
            ReplayRequest(v2_spec, "orders_v2.yaml", until=str(bound), into=f"t{unique}")
        )
        wait_for(lambda: runtime.get_deployment(record.name).state == "completed", timeout_s=120)
    check_v2(store, v2, record.name, before)


def test_a_replay_resumes_after_the_runtime_restarts(settings, brokers, make_topic, store, unique):
    topic = make_topic(partitions=3)
    commands = OrderGenerator(seed=93, step_ms=20).take(150_000)
    produce(brokers, topic, commands)
    settings = settings.with_(topic=topic)
    v2_spec = (REPO / "examples" / "orders" / "specs" / "orders_v2.yaml").read_text()
    v2 = load_pipeline(REPO / "examples" / "orders" / "specs" / "orders_v2.yaml")
    with Runtime(settings, brokers) as runtime:
        record = runtime.replay(ReplayRequest(v2_spec, "orders_v2.yaml", into=f"s{unique}"))
        wait_for(lambda: runtime.get_deployment(record.name).done > 20_000, timeout_s=120)
    with Runtime(settings, brokers) as runtime:  # resumed from the registry, not restarted
        status = runtime.get_deployment(record.name)
        assert 0 < status.done < status.total
        wait_for(lambda: runtime.get_deployment(record.name).state == "completed", timeout_s=200)
        events = [e.event for e in runtime.records.history(v2.name) if e.name == record.name]
        assert events[:2] == ["created", "stopped"] and "resumed" in events
    check_v2(store, v2, record.name, commands)


def test_bad_replays_are_refused_and_change_nothing(settings, brokers, make_topic, store, unique):
    topic = make_topic(partitions=2)
    produce(brokers, topic, OrderGenerator(seed=94).take(100))
    settings = settings.with_(topic=topic)
    v2_spec = (REPO / "examples" / "orders" / "specs" / "orders_v2.yaml").read_text()
    with Runtime(settings, brokers) as runtime:
        existing = runtime.replay(ReplayRequest(v2_spec, "orders_v2.yaml", into=f"e{unique}"))
        wait_for(lambda: runtime.get_deployment(existing.name).state == "completed")
        cases = [
            ({"start": "yesterday"}, "--from 'yesterday' is not a start"),
            ({"start": "0:5,9:1"}, "--from names partitions [9]"),
            ({"start": "0:999999"}, "--from 0:999999 is outside partition 0"),
            ({"until": "soon"}, "--until 'soon' is not a time"),
            ({"into": existing.name}, f"database {existing.name} already exists"),
            ({"into": "bad name"}, "is not a usable ClickHouse name"),
        ]
        for changes, message in cases:
            request = {"into": f"n{unique}", **changes}
            with pytest.raises(Exception, match=message.replace("[", r"\[").replace("]", r"\]")):
                runtime.replay(ReplayRequest(v2_spec, "orders_v2.yaml", **request))
        names = [r.name for r in runtime.records.all()]
        assert names == [existing.name]
        assert not int(
            store.command(f"SELECT count() FROM system.databases WHERE name = 'n{unique}'")
        )
        with pytest.raises(ConfigError, match="no deployment named 'nope'"):
            runtime.start("nope")
