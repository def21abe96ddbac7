"""A deployment as a Bytewax cluster of processes on one machine, on the real broker and the
embedded engine: one deployment lives through a cluster run cut by kill -9 of a child, a
resume on one process from the snapshots of two, and a resume on two from those of one. After
each stage the projections (orders and windows) equal the oracle of every command so far:
nothing missing, nothing doubled; and the unreadable records in every partition reach the DLQ
from whichever process read them, each one there (repeats allowed after the kill, as in one
process: `cqrs dlq tail` shows each once)."""

import contextlib
import os
import signal
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

from kafka import KafkaProducer
from prometheus_client import CollectorRegistry

from commands.log import CommandLog
from dataflows.metrics import Metrics
from deploy.deployment import Deployment, DeploymentConfig, State
from examples.orders.generator import OrderGenerator
from sinks.dlq import dlq_topic
from sinks.progress import read_progress
from tests.conftest import produce, read_log
from tests.oracles import (
    ORDER_COLUMNS,
    diff_orders,
    diff_windows,
    expected_orders,
    expected_revenue_per_minute,
)

#: commands in all: 60% for the cluster run that is killed, then 20% per rescale. The suite
#: runs 100,000; the issue's acceptance, 200,000, costs more than the suite's budget allows and
#: runs outside it: `make acceptance-cluster` (CQRS_CLUSTER_COMMANDS=200000)
TOTAL = int(os.environ.get("CQRS_CLUSTER_COMMANDS", "100000"))
FIRST, MORE = TOTAL * 3 // 5, TOTAL // 5
EPOCH = timedelta(seconds=1)  # snapshots often, so the kill lands after some


def per_partition(registry: CollectorRegistry, metric: str, name: str) -> dict[str, float]:
    """A metric per partition, as process 0 serves it."""
    found = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == metric and sample.labels["deployment"] == name:
                found[sample.labels["partition"]] = sample.value
    return found


def snapshotted(recovery: Path) -> bool:
    """Whether Bytewax has committed a snapshot of the pipeline's state in any partition."""
    for part in recovery.glob("part-*.sqlite3"):
        with (
            contextlib.closing(sqlite3.connect(f"file:{part}?mode=ro", uri=True)) as db,
            contextlib.suppress(sqlite3.OperationalError),  # locked by a writer: next time
        ):
            if db.execute("SELECT 1 FROM snaps WHERE step_id LIKE '%pipeline%'").fetchone():
                return True
    return False


def garbage(brokers: str, topic: str, partitions: int) -> set[tuple[int, int]]:
    """Two records in each partition that are no command; where they landed."""
    producer = KafkaProducer(bootstrap_servers=brokers, acks="all")
    sent = [
        producer.send(topic, b"{not json", key=b"x", partition=p)
        for p in range(partitions)
        for _ in range(2)
    ]
    producer.flush()
    landed = {(m.partition, m.offset) for m in (f.get(timeout=30) for f in sent)}
    producer.close()
    return landed


def assert_equals_oracle(store, pipeline, commands):
    db = pipeline.deployment
    rows = list(store.query(f"SELECT {ORDER_COLUMNS} FROM `{db}`.orders FINAL").named_results())
    assert diff_orders(expected_orders(commands), rows) == []
    revenue = next(p for p in pipeline.projections if p.name == "revenue_per_minute")
    windows = list(
        store.query(revenue.projector.view(f"`{db}`.`revenue_per_minute`")).named_results()
    )
    want = expected_revenue_per_minute(commands)
    assert diff_windows(want, windows, ("window_start", "region", "currency")) == []


def test_a_cluster_equals_the_oracle_through_a_kill_and_rescales(
    brokers, make_topic, orders_pipeline, run_bounded, store, store_dsn, tmp_path
):
    topic = make_topic(partitions=4)
    generator = OrderGenerator(seed=71, step_ms=20)
    commands = generator.take(FIRST)
    produce(brokers, topic, commands)
    bad = garbage(brokers, topic, partitions=4)
    with CommandLog(brokers, topic) as log:
        ends = log.end_offsets()
    total = sum(ends.values())

    # 1. two processes, killed midway: one child dies by SIGKILL after the first snapshots
    registry = CollectorRegistry()
    name = orders_pipeline.deployment
    killed = Deployment(
        DeploymentConfig(
            pipeline=orders_pipeline, brokers=brokers, topic=topic, clickhouse_dsn=store_dsn,
            recovery_root=tmp_path / "recovery", stop_at=ends, epoch=EPOCH, processes=2,
        ),
        Metrics(registry).for_deployment(orders_pipeline.name, 1, name),
    )  # fmt: skip
    killed.start(killed.prepare(store))
    deadline = time.monotonic() + 300
    while sum(
        o + 1 for o in read_progress(store, name).get("orders", {}).values()
    ) < total // 4 or not snapshotted(killed.recovery_dir):
        assert killed.join(0) is False, f"the run ended before the kill: {killed.state}"
        assert time.monotonic() < deadline, "the cluster wrote nothing in 300 s"
        time.sleep(0.1)
    cluster = killed.cluster
    assert cluster is not None and len(cluster.pids) == 1
    child = cluster.pids[0]
    os.kill(child, signal.SIGKILL)
    assert killed.join(120), "process 0 did not end after its peer was killed"
    assert killed.state is State.FAILED
    assert not os.path.exists(f"/proc/{child}"), "the killed child was not reaped"
    assert set(killed.placement.values()) == {0, 1}, f"no split: {killed.placement}"

    registry = CollectorRegistry()
    again = run_bounded(orders_pipeline, topic, registry, epoch=EPOCH, processes=2)
    assert again.state is State.COMPLETED
    # placement is what the processes reported reading: a partition this run found already
    # read to its end may report nothing, so it is a subset here
    assert set(again.placement) <= set(ends) and set(again.placement.values()) <= {0, 1}
    # the child's reports reach process 0's metrics: every partition read to its end
    assert per_partition(registry, "cqrs_source_next_offset", name) == {
        str(p): float(end) for p, end in ends.items()
    }
    assert_equals_oracle(store, orders_pipeline, commands)

    # 2. resumed on one process from the snapshots of two, then on two from those of one
    for processes in (1, 2):
        more = generator.take(MORE)
        produce(brokers, topic, more)
        commands += more
        run = run_bounded(orders_pipeline, topic, epoch=EPOCH, processes=processes)
        assert run.state is State.COMPLETED
        assert_equals_oracle(store, orders_pipeline, commands)

    rejected = {
        (int(h["source.partition"]), int(h["source.offset"]))
        for h in (
            dict((k, v.decode()) for k, v in r.headers) for r in read_log(brokers, dlq_topic(topic))
        )
    }
    assert rejected == bad
    with CommandLog(brokers, topic) as log:
        ends = log.end_offsets()
    progress = read_progress(store, name)
    assert {p: o + 1 for p, o in progress["orders"].items()} == ends
