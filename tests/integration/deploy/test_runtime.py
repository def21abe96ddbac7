"""The runtime in this process: it holds the store, runs a deployment in a thread, and serves
read-only queries to other processes over HTTP."""

import json
import time
import urllib.request

import msgspec
import pytest

from core.errors import ConfigError
from deploy.client import RequestRefused, RuntimeClient
from deploy.model import State
from deploy.runtime import Runtime
from deploy.runtime_file import find_runtime
from examples.orders.generator import OrderGenerator
from tests.conftest import produce
from tests.oracles import expected_orders


def wait_for(predicate, timeout_s=60.0, every_s=0.25):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"not true within {timeout_s}s")


def spec_text(pipeline):
    return msgspec.yaml.encode(msgspec.to_builtins(pipeline.spec)).decode()


def count_orders(client, settings):
    return client.query(f"SELECT count() FROM {settings.query_database}.orders").rows[0][0]


def test_runtime_serves_queries_while_the_pipeline_tails(
    settings, brokers, make_topic, orders_pipeline
):
    topic = make_topic(partitions=2)
    generator = OrderGenerator(seed=31)
    first, later = generator.take(1000), generator.take(1000)
    produce(brokers, topic, first)
    settings = settings.with_(topic=topic)

    with Runtime(settings, brokers) as runtime:
        info = find_runtime(settings.data_dir)
        assert info is not None and info.url == runtime.url
        deployment = runtime.ensure(orders_pipeline, spec_text(orders_pipeline))
        client = RuntimeClient(runtime.url, runtime.token)
        wait_for(lambda: count_orders(client, settings) == len(expected_orders(first)))
        produce(brokers, topic, later)  # the pipeline tails the log
        wait_for(lambda: count_orders(client, settings) == len(expected_orders(first + later)))

        for statement in [
            f"DROP TABLE {orders_pipeline.deployment}.orders",
            f"INSERT INTO {orders_pipeline.deployment}.orders (order_id) VALUES ('x')",
            f"ALTER TABLE {orders_pipeline.deployment}.orders DELETE WHERE 1",
            "CREATE TABLE evil (x UInt8) ENGINE = Memory",
        ]:
            with pytest.raises(RequestRefused, match=r"refused: .* is not allowed"):
                client.query(statement)
        assert count_orders(client, settings) == len(expected_orders(first + later))

        with pytest.raises(ConfigError, match="a runtime already runs on data dir"):
            Runtime(settings, brokers).open()

        request = urllib.request.Request(runtime.url + "/metrics")
        request.add_header("Authorization", f"Bearer {runtime.token}")
        metrics = urllib.request.urlopen(request).read().decode()
        assert "cqrs_commands_consumed_total" in metrics
        # the rows are in before the progress row that follows their insert: wait for it
        wait_for(lambda: sum(client.list_deployments()[0].lag.values()) == 0)
        (status,) = client.list_deployments()
        assert status.name == orders_pipeline.deployment
        assert status.state == "running" and status.follow is True
        assert status.behind_s == 0
        assert status.rows["orders"] >= len(expected_orders(first + later))
    assert deployment.state is State.STOPPED
    assert find_runtime(settings.data_dir) is None


def test_a_restarted_runtime_resumes_where_it_stopped(
    settings, brokers, make_topic, orders_pipeline
):
    topic = make_topic(partitions=2)
    generator = OrderGenerator(seed=32)
    first, later = generator.take(800), generator.take(300)
    produce(brokers, topic, first)
    settings = settings.with_(topic=topic)

    with Runtime(settings, brokers) as runtime:
        runtime.ensure(orders_pipeline, spec_text(orders_pipeline))
        client = RuntimeClient(runtime.url, runtime.token)
        wait_for(lambda: count_orders(client, settings) == len(expected_orders(first)))
    produce(brokers, topic, later)

    with Runtime(settings, brokers) as runtime:  # a fresh metrics registry
        runtime.ensure(orders_pipeline, spec_text(orders_pipeline))
        client = RuntimeClient(runtime.url, runtime.token)
        wait_for(lambda: count_orders(client, settings) == len(expected_orders(first + later)))
        consumed = sum(
            runtime.metrics_registry.get_sample_value(
                "cqrs_commands_consumed_total",
                {
                    "pipeline": orders_pipeline.name,
                    "version": "1",
                    "deployment": orders_pipeline.deployment,
                    "partition": str(p),
                },
            )
            or 0
            for p in range(2)
        )
        assert consumed == len(later)  # resumed from recovery: nothing read twice


def test_bad_requests_get_json_errors(settings, brokers):
    with Runtime(settings, brokers) as runtime:
        request = urllib.request.Request(runtime.url + "/query", data=b"{}", method="POST")
        request.add_header("Authorization", f"Bearer {runtime.token}")
        request.add_header("Content-Type", "application/json")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request)
        assert caught.value.code == 400
        assert "sql" in json.loads(caught.value.read())["error"]


def test_the_token_set_in_the_settings_is_required(settings, brokers):
    with Runtime(settings.with_(token="s3cret"), brokers) as runtime:
        assert runtime.token == "s3cret"
        with pytest.raises(Exception, match="refused the token"):
            RuntimeClient(runtime.url).health()
        assert RuntimeClient(runtime.url, token="s3cret").health().status == "ok"


def test_a_crashed_deployment_is_restarted(settings, brokers, make_topic, tmp_path, unique):
    topic = make_topic(partitions=2)
    commands = OrderGenerator(seed=33).take(500)
    produce(brokers, topic, commands)
    spec = f"""
name: crashy{unique}
version: 1
modules: [tests.fixtures.user_filters, examples.orders.order_state]
filters:
  - crash_once: {{marker: "{tmp_path / "crashed"}"}}
  - validate: {{schemas: examples.orders.schemas:SCHEMAS}}
  - order_state
projections:
  - name: orders
    steps: [order_rows]
"""
    from dataflows.spec import parse_pipeline

    with Runtime(settings.with_(topic=topic), brokers) as runtime:
        runtime.ensure(parse_pipeline(spec, "crashy.yaml"), spec)
        name = f"crashy{unique}_v1"
        wait_for(lambda: runtime.get_deployment(name).done == len(commands), timeout_s=60)
        events = [e.event for e in runtime.records.history(f"crashy{unique}")]
        assert "failed" in events and any(e.startswith("restarted") for e in events)
        assert runtime.get_deployment(name).state == "running"


def test_a_table_with_a_short_dedup_window_is_refused(
    settings, brokers, make_topic, store, orders_pipeline
):
    from sinks.ddl import create_database

    topic = make_topic(partitions=2)
    db = orders_pipeline.deployment
    store.command(create_database(db))
    store.command(
        f"CREATE TABLE `{db}`.orders (order_id String, version UInt64) ENGINE = "
        f"ReplacingMergeTree(version) ORDER BY order_id SETTINGS non_replicated_deduplication_window = 3"
    )
    with (
        Runtime(settings.with_(topic=topic), brokers) as runtime,
        pytest.raises(
            Exception, match="remembers 3 inserts for deduplication, but a restart may repeat up to"
        ),
    ):
        runtime.ensure(orders_pipeline, spec_text(orders_pipeline))
