"""A deployment: one pipeline spec version running, with its own ClickHouse database, its own
Bytewax recovery directory, and its DLQ.

It runs its Bytewax execution in a thread of the runtime (with embedded ClickHouse only one
process may open the store); with `processes` > 1 that thread is process 0 of a Bytewax
cluster whose other processes are children of the runtime (`deploy.cluster`), or members on
other hosts that ask it for their run (`member_run`, `deploy.member`). Stopping is
graceful: the source ends its partitions, Bytewax closes the epoch, the sinks flush and the
last snapshot is written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
from bytewax.dataflow import Dataflow
from bytewax.outputs import FixedPartitionedSink, Sink
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import cluster_main, run_main
from clickhouse_connect.driver.client import Client

from commands.log import CommandLog
from core.errors import ConfigError, RecoveryError
from dataflows.builder import build_dataflow
from dataflows.executor import Observers
from dataflows.metrics import DeploymentMetrics
from dataflows.source import CommandLogSource, StartAt
from dataflows.spec import Pipeline, Projection
from deploy import recovery_dir
from deploy.cluster import REPORTED, Cluster, payload, shared_payload
from deploy.memory import tune_collector
from deploy.model import MemberReport, MemberRun, ProcessStatus, State
from deploy.shares import Elsewhere, writes_store
from sinks import ddl
from sinks.dlq import DLQ, dlq_topic
from sinks.output import ClientFactory, SinkContext
from sinks.progress import PROGRESS, create_progress_table, read_progress
from sinks.store import open_client

log = logging.getLogger(__name__)

#: Bytewax epoch: how often state is snapshotted into recovery (the sinks flush there too, and
#: more often on their own `max_delay_ms`). Five seconds bounds the work a crash repeats to a
#: few seconds of log, while a snapshot (open orders, dedupe ids, open windows per partition)
#: is written to SQLite a handful of times a minute rather than every second.
EPOCH = timedelta(seconds=5)


@dataclass
class DeploymentConfig:
    pipeline: Pipeline
    brokers: str
    topic: str
    clickhouse_dsn: str
    recovery_root: Path
    #: the ClickHouse cluster its tables are made on (None: one server, or embedded)
    cluster: str | None = None
    #: the deployment (and database) name; `<pipeline>_v<version>` unless a replay names one
    name: str | None = None
    start: StartAt = field(default_factory=StartAt)
    #: end offsets (exclusive) for a bounded run; None tails the log
    stop_at: dict[int, int] | None = None
    epoch: timedelta = EPOCH
    #: how the sinks open ClickHouse (tests put faults at this boundary)
    client_factory: ClientFactory = open_client
    #: the log partitions this process handles (None: all); several processes, each with its
    #: own share, scale a deployment out when ClickHouse is a server they can all write to
    partitions: list[int] | None = None
    #: offsets per partition an operator chose to pass over (`cqrs skip`): to the DLQ
    skips: dict[int, frozenset[int]] = field(default_factory=dict)
    #: per partition, an offset up to which the source reads one record per batch
    careful: dict[int, int] = field(default_factory=dict)
    #: the shape of the Bytewax cluster: processes on this machine, workers in each
    processes: int = 1
    workers: int = 1
    #: a cluster across hosts (`cqrs run --addresses`), of which this process is process 0:
    #: it starts no process itself; the members ask it for their run (`member_run`)
    addresses: list[str] | None = None


class Deployment:
    def __init__(self, config: DeploymentConfig, metrics: DeploymentMetrics) -> None:
        self.config = config
        self.name = config.name or config.pipeline.deployment
        self.database = self.name
        self.metrics = metrics
        self.state = State.CREATED
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: the partitions this run reads (set when it starts)
        self.partitions: list[int] = []
        #: the child processes of a cluster run (while it runs)
        self.cluster: Cluster | None = None
        #: which process of the cluster reads each partition (0: this one), as reported
        self.placement: dict[int, int] = {}
        #: the run members on other hosts join (while one runs), and what they reported
        self._shared: MemberRun | None = None
        self._members: dict[int, ProcessStatus] = {}

    @property
    def recovery_dir(self) -> Path:
        return self.config.recovery_root / self.name

    def prepare(self, client: Client) -> list[int]:
        """Create the database, tables and DLQ topic, check the recovery state; return the
        log's partitions. Refuses (and changes nothing) when resuming could skip or redo work."""
        cfg = self.config
        with CommandLog(cfg.brokers, cfg.topic) as command_log:
            partitions = command_log.partitions()
        if cfg.partitions is not None:
            unknown = sorted(set(cfg.partitions) - set(partitions))
            if unknown:
                raise ConfigError(f"{self.name}: partitions {unknown} are not in {cfg.topic}")
            partitions = sorted(cfg.partitions)
        self._check_recovery(client)
        sinks = self._sinks(partitions)
        DLQ.prepare(client, sinks)
        client.command(ddl.create_database(self.database, cfg.cluster))
        create_progress_table(client, self.database, cfg.cluster)
        for projection in cfg.pipeline.projections:
            projection.output.prepare(client, sinks)
        if not self.recovery_dir.exists():
            self.recovery_dir.mkdir(parents=True)
            init_db_dir(self.recovery_dir, recovery_dir.PARTITIONS)
        return partitions

    def _sinks(self, partitions: list[int]) -> SinkContext:
        """What this deployment's outputs need to prepare their targets and build sinks."""
        cfg, m = self.config, self.metrics
        return SinkContext(
            deployment=self.name,
            brokers=cfg.brokers,
            log_topic=cfg.topic,
            clickhouse_dsn=cfg.clickhouse_dsn,
            partitions=partitions,
            client_factory=cfg.client_factory,
            cluster=cfg.cluster,
            dedup_inserts=self._dedup_needed(partitions),
            on_flush=m.on_flush,
            on_retry=m.on_retry,
            on_written=m.on_written,
        )

    def _dedup_needed(self, partitions: list[int]) -> int:
        """Inserts per table a crash can repeat: every partition's flushes in one epoch (on
        max_delay) plus the snapshot's own, with a margin of two."""
        delays = [p.sink.max_delay_ms for p in self.config.pipeline.spec.projections]
        per_epoch = self.config.epoch.total_seconds() * 1000 / min(delays) + 1
        return int(2 * len(partitions) * per_epoch)

    def _check_recovery(self, client: Client) -> None:
        if self.recovery_dir.exists():
            recovery_dir.check(self.name, self.recovery_dir)
            return
        exists = client.command(
            f"SELECT count() FROM system.tables WHERE database = {ddl.literal(self.database)} "
            f"AND name = {ddl.literal(PROGRESS.name)}"
        )
        if int(exists) and any(read_progress(client, self.database).values()):
            raise RecoveryError(
                f"{self.name}: its database has written progress but its recovery directory "
                f"{self.recovery_dir} is gone; resuming from nothing would redo or skip work. "
                f"Restore the directory, or rebuild with a replay into a new database"
            )

    def run(self, partitions: list[int]) -> None:
        """Run the dataflow in this thread until it completes, fails or is stopped: alone, or
        as process 0 of a cluster whose other processes this run starts and ends."""
        cfg = self.config
        self.partitions = list(partitions)
        flow, opened = self._flow(partitions, process_id=0)
        self.state = State.RUNNING
        tune_collector()
        recovery = RecoveryConfig(str(self.recovery_dir))
        try:
            if cfg.processes == 1 and cfg.workers == 1:
                run_main(flow, epoch_interval=cfg.epoch, recovery_config=recovery)
            else:
                self._run_cluster(flow, partitions, recovery)
        except BaseException as exc:
            self.state = State.FAILED
            self.error = exc
            # The Python error and its traceback, under the text of Bytewax's Rust panic.
            log.error("deployment %s failed: %s", self.name, exc, exc_info=exc)
            raise
        finally:
            for part in opened:
                part.close_all()
        self.state = State.STOPPED if self._stop.is_set() else State.COMPLETED

    def _run_cluster(self, flow: Dataflow, partitions: list[int], recovery: RecoveryConfig) -> None:
        cfg = self.config
        if cfg.addresses is not None:
            self._run_across_hosts(flow, partitions, recovery, cfg.addresses)
            return
        cluster = Cluster(
            self.name, payload(cfg, partitions), cfg.processes, cfg.workers, self._reported
        )
        self.cluster = cluster
        try:
            cluster.start()
            if self._stop.is_set():  # stopped while the children started
                cluster.stop()
            cluster_main(
                flow,
                cluster.addresses if cfg.processes > 1 else [],
                0,
                epoch_interval=cfg.epoch,
                recovery_config=recovery,
                worker_count_per_proc=cfg.workers,
            )
        except BaseException:
            cluster.kill()
            raise
        finally:
            self.cluster = None
        cluster.finish()

    def _run_across_hosts(
        self, flow: Dataflow, partitions: list[int], recovery: RecoveryConfig, addresses: list[str]
    ) -> None:
        """Process 0 of a cluster whose members run on other hosts: each asks for this run
        (`member_run`) and joins it; Bytewax waits for all of them to connect."""
        cfg = self.config
        self._members = {}
        self._shared = MemberRun(uuid.uuid4().hex, False, shared_payload(payload(cfg, partitions)))
        try:
            cluster_main(
                flow,
                addresses if len(addresses) > 1 else [],  # one process: no exchange to bind
                0,
                epoch_interval=cfg.epoch,
                recovery_config=recovery,
                worker_count_per_proc=cfg.workers,
            )
        finally:
            self._shared = None

    def member_run(self, report: MemberReport) -> MemberRun | None:
        """The run a member joins (None when none runs), noting what the member reported; it
        says `stopping` once this process stops, so the member ends its partitions too."""
        shared = self._shared
        if shared is None:
            return None
        if report.process >= self.config.processes:
            raise ConfigError(
                f"{self.name} runs on {self.config.processes} processes: there is no process "
                f"{report.process}; check the member's --addresses and --process-id"
            )
        self._members[report.process] = ProcessStatus(
            report.process, report.pid, sorted(report.partitions)
        )
        for method, args in report.reports:
            try:
                if method in REPORTED:
                    self._reported(report.process, method, args)
            except Exception:  # a report is for monitoring: it never stops the cluster
                log.exception("%s: process %d sent a bad report", self.name, report.process)
        return msgspec.structs.replace(shared, stopping=self._stop.is_set())

    def _consumed(self, partition: int, records: int, next_offset: int, lag: int | None) -> None:
        self.placement[partition] = 0
        self.metrics.on_consumed(partition, records, next_offset, lag)

    def _reported(self, proc_id: int, method: str, args: list[Any]) -> None:
        """What a child's source and steps observed, on this deployment's metrics."""
        if method == "on_consumed":
            self.placement[args[0]] = proc_id
        getattr(self.metrics, method)(*args)

    def processes_status(self) -> list[ProcessStatus]:
        """Each process of this run and the partitions it reads (as far as reported)."""
        if self.config.addresses is not None:
            mine = ProcessStatus(0, os.getpid(), sorted(p for p, at in self.placement.items()
                                                        if at == 0))  # fmt: skip
            others = range(1, self.config.processes)
            return [mine, *(self._members.get(i, ProcessStatus(i, 0, [])) for i in others)]
        cluster = self.cluster
        pids = [os.getpid(), *(cluster.pids if cluster is not None else [])]
        return [
            ProcessStatus(i, pid, sorted(p for p, at in self.placement.items() if at == i))
            for i, pid in enumerate(pids)
        ]

    def run_member(self, partitions: list[int], addresses: list[str], proc_id: int) -> None:
        """Run as process `proc_id` > 0 of a cluster (a child of the runtime, or a member on
        another host): with the embedded engine it never opens the store (`writes_store`)."""
        cfg = self.config
        self.partitions = list(partitions)
        flow, opened = self._flow(partitions, process_id=proc_id)
        self.state = State.RUNNING
        tune_collector()
        try:
            cluster_main(
                flow,
                addresses,
                proc_id,
                epoch_interval=cfg.epoch,
                recovery_config=RecoveryConfig(str(self.recovery_dir)),
                worker_count_per_proc=cfg.workers,
            )
        finally:
            for part in opened:
                part.close_all()

    def _flow(self, partitions: list[int], process_id: int) -> tuple[Dataflow, list[Any]]:
        """The deployment's dataflow, and what it opens (to close when the run ends)."""
        cfg = self.config
        holds_store = writes_store(cfg.clickhouse_dsn, process_id)
        source = CommandLogSource(
            cfg.brokers,
            cfg.topic,
            start=cfg.start,
            stop_at=cfg.stop_at,
            stop_event=self._stop,
            on_consumed=self._consumed,
            partitions=partitions,
            skips=cfg.skips,
            dlq=dlq_topic(cfg.topic),
            careful=cfg.careful,
        )

        sinks = self._sinks(partitions)
        opened: list[Any] = [source]

        def projection_sink(projection: Projection) -> Sink[Any]:
            sink = projection.output.sink(sinks)
            opened.append(sink)
            if not holds_store and isinstance(sink, FixedPartitionedSink):
                return Elsewhere(sink)
            return sink

        m = self.metrics
        dlq = DLQ.sink(sinks)
        opened.append(dlq)
        flow = build_dataflow(
            self.name,
            cfg.pipeline,
            source,
            projection_sink,
            dlq,
            Observers(
                on_step=m.on_step,
                on_rejected=m.on_rejected,
                on_skipped=m.on_skipped,
                on_accepted=m.on_accepted,
                on_watermark=m.on_watermark,
            ),
        )
        return flow, opened

    def start(self, partitions: list[int]) -> None:
        """Run in a thread of its own."""
        self._thread = threading.Thread(
            target=self._run_quietly,
            args=(partitions,),
            name=f"deployment-{self.name}",
            daemon=True,
        )
        self._thread.start()

    def _run_quietly(self, partitions: list[int]) -> None:
        with contextlib.suppress(BaseException):
            self.run(partitions)

    def stop(self, timeout_s: float = 60.0) -> None:
        """Ask the source to end (in every process of a cluster), then wait for the final
        flush and snapshot."""
        if self.state == State.RUNNING:
            self.state = State.STOPPING
        self._stop.set()
        cluster = self.cluster
        if cluster is not None:
            cluster.stop()
        self.join(timeout_s)

    def join(self, timeout_s: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout_s)
            return not self._thread.is_alive()
        return True
