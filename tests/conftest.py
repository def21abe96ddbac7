"""Session-wide real components: a Kafka broker (started by the project's launcher, or the one
CQRS_BROKERS names) and the embedded ClickHouse engine (one chDB directory per test process)."""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest
from kafka import KafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry

import operators.builtin  # noqa: F401 - registers the built-in filters
from commands.log import CommandLog
from commands.producer import CommandProducer
from core.errors import CqrsError
from dataflows.metrics import Metrics
from dataflows.spec import Pipeline, load_pipeline
from deploy import bootstrap
from deploy.broker import KafkaDistribution, LocalBroker
from deploy.client import RuntimeClient
from deploy.deployment import Deployment, DeploymentConfig
from deploy.settings import Settings
from sinks.store import open_client

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that needs the broker is `slow` (the session starts one, and the test waits on
    it), so `make test-fast` (`-m "not slow"`) runs without a broker. Tests that start a broker
    of their own, or take long without one, carry the mark themselves."""
    for item in items:
        if "brokers" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


def distribution() -> KafkaDistribution:
    """Kafka's jars in the project's cache (`.cache/` unless CQRS_CACHE_DIR says otherwise)."""
    cache = Settings.from_env().cache_dir
    return KafkaDistribution(cache if cache.is_absolute() else REPO / cache)


@pytest.fixture(scope="session")
def brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("CQRS_BROKERS")
    if given:
        yield given
        return
    launcher = LocalBroker(tmp_path_factory.mktemp("broker"), distribution())
    state = launcher.start()
    yield state.bootstrap
    launcher.stop()


@pytest.fixture(scope="session")
def store_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The one embedded store this test process may open."""
    return f"chdb://{tmp_path_factory.mktemp('store') / 'clickhouse'}"


@pytest.fixture(scope="session")
def store(store_dsn: str):
    return open_client(store_dsn)


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def make_topic(brokers: str, unique: str) -> Callable[..., str]:
    """Create a fresh command log topic for one test."""

    def make(partitions: int = 6, name: str | None = None) -> str:
        topic = name or f"t_{unique}"
        with CommandLog(brokers, topic) as log:
            log.ensure(partitions)
        return topic

    return make


def renamed(pipeline: Pipeline, name: str) -> Pipeline:
    """The same pipeline under another name: its own database, so tests do not share tables."""
    return dataclasses.replace(pipeline, spec=msgspec.structs.replace(pipeline.spec, name=name))


@pytest.fixture
def orders_pipeline(unique: str) -> Pipeline:
    return renamed(
        load_pipeline(REPO / "examples" / "orders" / "specs" / "orders.yaml"), f"orders_{unique}"
    )


@pytest.fixture
def run_bounded(brokers: str, store, store_dsn: str, tmp_path: Path) -> Callable[..., Deployment]:
    """Run a deployment from the earliest offset to the log's end as of now, and return it."""

    def run(
        pipeline: Pipeline,
        topic: str,
        registry: CollectorRegistry | None = None,
        **config: Any,
    ) -> Deployment:
        with CommandLog(brokers, topic) as log:
            ends = log.end_offsets()
        metrics = Metrics(registry or CollectorRegistry())
        deployment = Deployment(
            DeploymentConfig(
                pipeline=pipeline,
                brokers=brokers,
                topic=topic,
                clickhouse_dsn=store_dsn,
                recovery_root=tmp_path / "recovery",
                stop_at=ends,
                **config,
            ),
            metrics.for_deployment(pipeline.name, pipeline.version, pipeline.deployment),
        )
        deployment.run(deployment.prepare(store))
        return deployment

    return run


def read_log(brokers: str, topic: str, stop: dict[int, int] | None = None) -> list:
    """Every record of a topic below the stop offsets (default: its end now), in order per
    partition, read with a group-less consumer from the first offset."""
    if stop is None:
        with CommandLog(brokers, topic) as log:
            stop = log.end_offsets()
    consumer = KafkaConsumer(
        bootstrap_servers=brokers, enable_auto_commit=False, max_poll_records=10_000
    )
    tps = [TopicPartition(topic, p) for p in stop]
    consumer.assign(tps)
    consumer.seek_to_beginning()
    found = []
    deadline = time.monotonic() + 120
    while any(consumer.position(tp) < stop[tp.partition] for tp in tps):
        assert time.monotonic() < deadline, f"{topic} could not be read in 120 s"
        for tp, records in consumer.poll(timeout_ms=500).items():
            found.extend(r for r in records if r.offset < stop[tp.partition])
    consumer.close()
    return found


def produce(brokers: str, topic: str, commands) -> None:
    with CommandProducer(brokers, topic) as producer:
        for command in commands:
            producer.send(command)
        producer.flush()
        assert producer.errors == 0, producer.last_error


def runtime_api(env: Mapping[str, str]) -> RuntimeClient:
    """A client of the runtime of `env`'s data dir, with its token, as the CLI gets one (a
    `CqrsError` when none runs). A test asks the runtime under test from its own process:
    a `cqrs` process for each question takes a second of the CPU that runtime needs."""
    return bootstrap.runtime_service(Settings.from_env(env))


def ask_runtime(env: Mapping[str, str], question: Callable[[RuntimeClient], T], otherwise: T) -> T:
    """The answer to `question`, asked of `env`'s runtime; `otherwise` while it has none to
    give (no runtime serves yet, or it refuses: what the question reads is not there yet)."""
    try:
        return question(runtime_api(env))
    except CqrsError:
        return otherwise
