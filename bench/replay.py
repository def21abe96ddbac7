"""Replay throughput: a pipeline rebuilding its projections from the earliest offset into a new
database, side by side with the bare loop over the same log, in one run.

    python -m bench.replay [commands]      (default 1,000,000; starts its own broker)
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

import operators.builtin  # noqa: F401
from bench.bare_loop import bare_loop
from commands.generator import OrderGenerator
from commands.load import produce_load
from commands.log import CommandLog
from commands.producer import CommandProducer
from dataflows.metrics import Metrics
from dataflows.spec import Pipeline, load_pipeline, parse_pipeline
from deploy.broker import KafkaDistribution, LocalBroker
from deploy.deployment import Deployment, DeploymentConfig
from sinks.store import open_client

REPO = Path(__file__).resolve().parents[1]
ORDERS_ONLY = """
name: orders_only
version: 1
filters: [validate, dedupe, order_state]
projections:
  - name: orders
    steps: [order_rows]
"""


def replay(
    pipeline: Pipeline, brokers: str, topic: str, ends: dict[int, int], dsn: str, work: Path
) -> dict[str, float]:
    metrics = Metrics(CollectorRegistry())
    deployment = Deployment(
        DeploymentConfig(
            pipeline=pipeline, brokers=brokers, topic=topic, clickhouse_dsn=dsn,
            recovery_root=work / "recovery", stop_at=ends,
        ),
        metrics.for_deployment(pipeline.name, pipeline.version, pipeline.deployment),
    )  # fmt: skip
    client = open_client(dsn)
    partitions = deployment.prepare(client)
    started, cpu = time.perf_counter(), time.process_time()
    deployment.run(partitions)
    elapsed = time.perf_counter() - started
    n = sum(ends.values())
    return {
        "commands": n,
        "seconds": elapsed,
        "commands_per_s": n / elapsed,
        "cpu_us_per_command": (time.process_time() - cpu) / n * 1e6,
    }


def main(count: int) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    broker = LocalBroker(work / "broker", KafkaDistribution(REPO / ".cache"))
    brokers = broker.start().bootstrap
    try:
        topic = "commands"
        with CommandLog(brokers, topic) as log:
            log.ensure(6)
        with CommandProducer(brokers, topic) as producer:
            produce_load(producer, OrderGenerator(seed=1, step_ms=5), count=count)
        with CommandLog(brokers, topic) as log:
            ends = log.end_offsets()
        dsn = f"chdb://{work / 'clickhouse'}"
        results = {
            "bare loop (orders rows)": bare_loop(brokers, topic, ends, dsn, "bare"),
            "replay orders-only spec": replay(
                parse_pipeline(ORDERS_ONLY, "orders_only"), brokers, topic, ends, dsn, work
            ),
            "replay orders v1 (2 projections)": replay(
                load_pipeline(REPO / "dataflows" / "orders.yaml"), brokers, topic, ends, dsn, work
            ),
        }
    finally:
        broker.stop()
    floor = results["bare loop (orders rows)"]["commands_per_s"]
    for name, r in results.items():
        print(
            f"{name:34} {r['commands_per_s']:>9,.0f} cmd/s  "
            f"{r['cpu_us_per_command']:5.1f} us CPU/cmd  "
            f"{r['commands_per_s'] / floor:4.2f}x the bare loop"
        )
    return results


if __name__ == "__main__":
    out = main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
    print(json.dumps(out))
