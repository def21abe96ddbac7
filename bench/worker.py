"""One measured job, in a process of its own (so CPU time and peak RSS are its own): prints a
JSON line of figures. `python -m bench` calls it; each job reads a topic the harness filled.

    python -m bench.worker <job> '<json arguments>'
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
from prometheus_client import CollectorRegistry

import operators.builtin  # noqa: F401
from bench.bare_loop import bare_loop, consumer_from_start
from bench.collector import CollectorClock
from bench.null_store import null_client
from commands.log import CommandLog, part_key
from core.envelope import LogRecord, Polled
from dataflows.metrics import DeploymentMetrics, Metrics
from dataflows.spec import Pipeline, load_pipeline
from deploy.deployment import Deployment, DeploymentConfig
from deploy.memory import limit_malloc_arenas
from sinks.store import open_client

REPO = Path(__file__).resolve().parents[1]


class RssSampler:
    """The process's resident memory every half second while a job runs."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.monotonic()

    def _run(self) -> None:
        process = psutil.Process()
        while not self._stop.wait(0.5):
            self.samples.append((time.monotonic() - self._started, process.memory_info().rss))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def figures(
    total: int, elapsed: float, cpu: float, rss: RssSampler, inserts: list[tuple[str, int]]
) -> dict[str, Any]:
    step = max(1, len(rss.samples) // 10)
    by_table: dict[str, list[int]] = {}
    for table, rows in inserts:
        by_table.setdefault(table, []).append(rows)
    return {
        "commands": total,
        "seconds": round(elapsed, 2),
        "commands_per_s": round(total / elapsed),
        "cpu_us_per_command": round(cpu / total * 1e6, 1),
        "rows_per_insert": round(sum(r for _, r in inserts) / len(inserts)) if inserts else 0,
        "rows_per_insert_by_table": {t: round(sum(r) / len(r)) for t, r in by_table.items()},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_mb_over_time": [(round(t), round(b / 2**20)) for t, b in rss.samples[::step]],
    }


class Recorder(Metrics):
    """The project's metrics, plus the raw figures a benchmark reports."""

    def __init__(self) -> None:
        super().__init__(CollectorRegistry())
        self.inserts: list[tuple[str, int]] = []
        self.latencies: list[float] = []

    def deployment_metrics(self, pipeline: Pipeline) -> DeploymentMetrics:
        """A deployment's metrics that also note each insert's size and each written batch's
        latency (from its newest log time to now) for the figures."""
        metrics = self.for_deployment(pipeline.name, pipeline.version, pipeline.deployment)
        on_flush, on_written = metrics.on_flush, metrics.on_written

        def flushed(table: str, rows: int, seconds: float) -> None:
            self.inserts.append((table, rows))
            on_flush(table, rows, seconds)

        def written(times: list[int]) -> None:
            now = time.time()
            self.latencies.extend(now - t / 1000 for t in times)
            on_written(times)

        metrics.on_flush, metrics.on_written = flushed, written  # type: ignore[method-assign]
        return metrics


def ours(args: dict[str, Any]) -> dict[str, Any]:
    """The pipeline as deployed: our source, the executor, the ClickHouse sink."""
    brokers, topic, work = args["brokers"], args["topic"], Path(args["work"])
    pipeline = load_pipeline(REPO / args["spec"])
    only = args.get("partitions")
    with CommandLog(brokers, topic) as log:
        ends = {p: e for p, e in log.end_offsets().items() if only is None or p in only}
    recorder = Recorder()
    metrics = recorder.deployment_metrics(pipeline)
    dsn = f"chdb://{work / 'clickhouse'}"
    # "null": no engine in this process, inserts serialised and dropped (`bench.null_store`)
    factory = null_client if args.get("store") == "null" else open_client
    deployment = Deployment(
        DeploymentConfig(
            pipeline=pipeline,
            brokers=brokers,
            topic=topic,
            clickhouse_dsn=dsn,
            recovery_root=work / "recovery",
            stop_at=ends,
            partitions=only,
            client_factory=factory,
        ),
        metrics,
    )
    partitions = deployment.prepare(factory(dsn))
    total = sum(ends.values())
    with RssSampler() as rss, CollectorClock() as collector:
        started, cpu = time.perf_counter(), time.process_time()
        deployment.run(partitions)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    # the library chDB's engine lives in: whether this run loaded it
    return (
        figures(total, elapsed, cpu, rss, recorder.inserts)
        | collector.figures()
        | {"chdb": "chdb" in sys.modules}
    )


def bare(args: dict[str, Any]) -> dict[str, Any]:
    with CommandLog(args["brokers"], args["topic"]) as log:
        ends = log.end_offsets()
    dsn = f"chdb://{Path(args['work']) / 'clickhouse'}"
    with RssSampler(), CollectorClock() as collector:
        result = bare_loop(
            args["brokers"],
            args["topic"],
            ends,
            dsn,
            "bare",
            args.get("decode_only", False),
            args.get("batch_rows"),
        )
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result | collector.figures()


def clickhouse_parses(args: dict[str, Any]) -> dict[str, Any]:
    """Python only joins raw values; ClickHouse parses the JSON, and the filter is SQL."""
    brokers, topic = args["brokers"], args["topic"]
    client = open_client(f"chdb://{Path(args['work']) / 'clickhouse'}")
    client.command("CREATE DATABASE IF NOT EXISTS parses")
    client.command(
        "CREATE TABLE IF NOT EXISTS parses.commands (id String, type LowCardinality(String), "
        "aggregate_id String, ts UInt64, v UInt8, data String) "
        "ENGINE = MergeTree ORDER BY aggregate_id"
    )
    with CommandLog(brokers, topic) as log:
        ends = log.end_offsets()
    consumer = consumer_from_start(brokers, topic, list(ends))
    total, consumed, chunk = sum(ends.values()), 0, []
    settings = {"input_format_json_read_objects_as_strings": 1, "async_insert": 0}
    started, cpu = time.perf_counter(), time.process_time()
    while consumed < total:
        for messages in consumer.poll(timeout_ms=200).values():
            chunk.extend(m.value for m in messages)
            consumed += len(messages)
        if len(chunk) >= 50_000 or (consumed >= total and chunk):
            block = b"\n".join(chunk)
            client.raw_insert(
                "parses.commands", insert_block=block, fmt="JSONEachRow", settings=settings
            )
            chunk = []
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    consumer.close()
    return {
        "commands": total,
        "seconds": round(elapsed, 2),
        "commands_per_s": round(total / elapsed),
        "cpu_us_per_command": round(cpu / total * 1e6, 1),
        "paid_in_sql": int(
            client.command("SELECT count() FROM parses.commands WHERE type = 'order.paid'")
        ),
    }


def bytewax_kafka(args: dict[str, Any]) -> dict[str, Any]:
    """The same executor and sinks behind Bytewax's own Kafka connector (confluent-kafka), one
    item per message as that connector emits them."""
    import bytewax.operators as op
    from bytewax.connectors.kafka import KafkaSource
    from bytewax.dataflow import Dataflow
    from bytewax.recovery import RecoveryConfig, init_db_dir
    from bytewax.testing import run_main

    from dataflows.builder import _Logic
    from dataflows.executor import PartitionPipeline
    from sinks.clickhouse import ProjectionSink, create_projection_table
    from sinks.ddl import create_database
    from sinks.dlq import DlqSink, DlqWriter
    from sinks.progress import create_progress_table

    brokers, topic, work = args["brokers"], args["topic"], Path(args["work"])
    pipeline = load_pipeline(REPO / args["spec"])
    with CommandLog(brokers, topic) as log:
        ends = log.end_offsets()
    dsn = f"chdb://{work / 'clickhouse'}"
    client = open_client(dsn)
    client.command(create_database("bwk"))
    create_progress_table(client, "bwk")
    inserts: list[tuple[str, int]] = []
    flow = Dataflow("bytewax_kafka")
    messages = op.input("kafka", flow, KafkaSource([brokers], [topic], tail=False, batch_size=5000))

    def as_batch(m: Any) -> tuple[str, Polled]:
        record = LogRecord(m.partition, m.offset, m.timestamp[1], m.key, m.value)
        return part_key(m.partition), Polled(m.partition, [record], m.offset + 1)

    batches = op.map("record", messages, as_batch)
    results = op.stateful_batch(
        "pipeline", batches, lambda resume: _Logic(PartitionPipeline(pipeline, resume))
    )
    for projection in pipeline.projections:
        create_projection_table(client, "bwk", projection.output.table)
        name = projection.name
        items = op.map_value(
            f"{name}_rows",
            results,
            lambda out, n=name: (
                out.first_offset,
                out.last_offset,
                out.last_log_time,
                out.items[n],
            ),
        )
        sink = ProjectionSink(
            "bwk",
            projection.output.table,
            dsn,
            list(ends),
            dlq=lambda: DlqWriter(brokers, topic, "bwk"),
            on_flush=lambda table, rows, seconds: inserts.append((table, rows)),
        )
        op.output(f"{name}_sink", items, sink)
    rejects = op.flat_map("rejects", results, lambda kv: kv[1].rejects)
    op.output("dlq", rejects, DlqSink(brokers, topic, "bwk"))
    recovery = work / "bwk-recovery"
    recovery.mkdir(exist_ok=True)
    init_db_dir(recovery, 1)
    total = sum(ends.values())
    with RssSampler() as rss:
        started, cpu = time.perf_counter(), time.process_time()
        run_main(
            flow, epoch_interval=timedelta(seconds=5), recovery_config=RecoveryConfig(str(recovery))
        )
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return figures(total, elapsed, cpu, rss, inserts)


def latency(args: dict[str, Any]) -> dict[str, Any]:
    """Produce at a fixed rate into a live deployment; the time from each batch's newest log
    time to its rows being written (visible in the stable view from that moment)."""
    brokers, topic, work = args["brokers"], args["topic"], Path(args["work"])
    with CommandLog(brokers, topic) as log:
        log.ensure(6)
    pipeline = load_pipeline(REPO / args["spec"])
    recorder = Recorder()
    metrics = recorder.deployment_metrics(pipeline)
    dsn = f"chdb://{work / 'clickhouse'}"
    deployment = Deployment(
        DeploymentConfig(
            pipeline=pipeline,
            brokers=brokers,
            topic=topic,
            clickhouse_dsn=dsn,
            recovery_root=work / "recovery",
        ),
        metrics,
    )
    deployment.start(deployment.prepare(open_client(dsn)))
    time.sleep(5)  # started and idle: what follows is steady state
    recorder.latencies.clear()
    # the producer in a process of its own, as a real one is (`bench.paced_load`)
    load = [str(args["rate"]), str(args["seconds"])]
    done = subprocess.run(
        [sys.executable, "-m", "bench.paced_load", brokers, topic, *load],
        capture_output=True, text=True, check=True, timeout=args["seconds"] + 120,
    )  # fmt: skip
    sent = json.loads(done.stdout.strip().splitlines()[-1])
    time.sleep(3)
    deployment.stop()
    # p99 per tenth of the run: a tail that grows from tenth to tenth is a backlog (the pipeline
    # not keeping up); one that comes and goes is a stall (an epoch's flush and snapshot)
    tenth = max(1, len(recorder.latencies) // 10)
    slices = [
        sorted(recorder.latencies[i : i + tenth]) for i in range(0, len(recorder.latencies), tenth)
    ]
    values = sorted(recorder.latencies)

    def at(q: float) -> float:
        return round(values[min(len(values) - 1, int(q * len(values)))], 3)

    return {
        "rate": args["rate"],
        "sent": sent["sent"],
        "achieved_rate": round(sent["rate"]),
        "batches": len(values),
        "p50_s": at(0.5),
        "p99_s": at(0.99),
        "max_s": round(values[-1], 3),
        "p99_s_by_tenth": [round(s[int(0.99 * (len(s) - 1))], 2) for s in slices],
    }


JOBS = {
    "ours": ours,
    "bare": bare,
    "clickhouse_parses": clickhouse_parses,
    "bytewax_kafka": bytewax_kafka,
    "latency": latency,
}

if __name__ == "__main__":
    limit_malloc_arenas()  # as the runtime does (`cqrs` sets it at start)
    job, arguments = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(JOBS[job](arguments)))
