"""The runtime: the one long-running process of a data dir.

It holds the ClickHouse store (with embedded chDB no other process may open it), runs
deployments in threads, and serves the HTTP API through which the CLI queries and controls it.
A supervisor restarts a deployment that crashed (with a growing pause), records how each one
ended in the registry, and commits each deployment's written offsets to a consumer group of its
own name, so the broker's tools show its lag. On start, the runtime resumes every deployment
the registry says should be running: a replay stopped by a restart goes on where it was.

A deployment that fails `FAILURES_AT_ONE_PLACE` times in a row at the same record is not
restarted again: it stops with an error naming the partition and offset and the `cqrs skip`
that passes over it. A failure inside a batch names the batch's first offset, so the restart
after it reads that stretch one record per batch, and the next failure names the record.
Partitions added to a command log are taken in by restarting each tailing deployment of that
log from its snapshot (the new partitions from their beginning): Bytewax fixes a run's
partitions when it starts.

A runtime lives through many deploys, so what it holds per deployment is bounded by the
deployments that are live: a deployment's own clients close when it stops, the offsets of
every deployment go through one admin client, and a deployment that is gone leaves no metric
series and no consumer group behind.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import msgspec
from clickhouse_connect.driver.client import Client
from kafka import KafkaAdminClient, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry

from api.security import Limits
from api.server import ApiServer
from api.token import ensure_token
from commands.errors import (
    CommandLogError,
    ConfigError,
    CqrsError,
    FailedAt,
    NotFound,
    RecoveryError,
    SpecError,
    StuckAt,
)
from commands.log import CommandLog
from dataflows.metrics import Metrics
from dataflows.source import BATCH_SIZE, StartAt
from dataflows.spec import Pipeline
from deploy import positions
from deploy.bluegreen import BlueGreen
from deploy.deployment import Deployment, DeploymentConfig
from deploy.memory import release_memory
from deploy.model import (
    BlueGreenState,
    Dashboard,
    DeploymentHealth,
    DeploymentStatus,
    Desired,
    Health,
    History,
    InitRequest,
    Origin,
    PanelData,
    PromoteRequest,
    QueryResult,
    ReplayRequest,
    Stage,
    State,
)
from deploy.panels import BUSINESS
from deploy.query import Reader
from deploy.records import Record, Records
from deploy.runtime_file import RuntimeFile
from deploy.settings import Settings
from deploy.specs import Specs
from deploy.status import describe, listed, written
from operators.code import allow_list
from sinks import ddl
from sinks.store import open_client

log = logging.getLogger(__name__)

#: errors that a restart cannot cure: the deployment stays failed until someone acts
_REFUSALS = (RecoveryError, CommandLogError, SpecError, ConfigError, StuckAt)
#: failures in a row at the same record before a deployment waits for `cqrs skip`
FAILURES_AT_ONE_PLACE = 5
_FIRST_RESTART_S = 1.0
_MAX_RESTART_S = 60.0
_COMMIT_EVERY_S = 5.0


def root_cause(exc: BaseException) -> BaseException:
    """The project error under the wrappers Bytewax puts around what a step raised."""
    seen = exc
    while seen is not None:
        if isinstance(seen, CqrsError):
            return seen
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    return exc


class Runtime:
    def __init__(
        self,
        settings: Settings,
        brokers: str,
        metrics_registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.brokers = brokers
        self.pid = os.getpid()
        self.metrics_registry = (
            metrics_registry if metrics_registry is not None else CollectorRegistry()
        )
        self.metrics = Metrics(self.metrics_registry)
        self._file = RuntimeFile(settings.data_dir)
        self._client: Client | None = None
        # Read-only queries get a session of their own (`readonly` is set on the session)
        self._reader: Reader | None = None
        #: each record's spec, parsed once; a spec from the API is held to the allow-list
        self.specs = Specs(allow_list(settings.allow_modules))
        self.token = ""
        self._api: ApiServer | None = None
        self._lock = threading.RLock()
        self.deployments: dict[str, Deployment] = {}
        self._restarts: dict[str, tuple[int, float]] = {}  # name -> (attempts, due at)
        # name -> ((partition, offset) of its last failure, failures there in a row, the run
        # that failed last: each run is counted once)
        self._failed_at: dict[str, tuple[tuple[int, int], int, Deployment]] = {}
        self._stop = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._logs: dict[str, CommandLog] = {}
        self._logs_lock = threading.Lock()  # a KafkaConsumer is not for several threads
        self._admin: KafkaAdminClient | None = None  # commits every deployment's offsets
        self._admin_lock = threading.Lock()

    def __enter__(self) -> Runtime:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def client(self) -> Client:
        if self._client is None:
            raise CqrsError("the runtime is not open")
        return self._client

    @property
    def url(self) -> str:
        return self._api.url if self._api is not None else ""

    @property
    def dashboard_url(self) -> str:
        """The dashboard's address with the token in its fragment (which no request carries):
        printed once, like Jupyter's, for the user to open."""
        return f"{self.url}/dashboard#token={self.token}" if self._api is not None else ""

    @property
    def records(self) -> Records:
        return Records(self.client, self.settings.control_database)

    @property
    def bluegreen(self) -> BlueGreen:
        return BlueGreen(self)

    # -- life ----------------------------------------------------------------------------------

    def open(self) -> None:
        """Take the data dir, open the store, serve the API, resume what should run."""
        s = self.settings
        self._file.acquire()
        try:
            # A one-off `cqrs query` may hold the embedded store for a moment: wait for it.
            self._client = open_client(s.clickhouse_dsn, wait_s=30.0)
            self._reader = Reader(s.reader_dsn, s.query_timeout)
            self.records.create_tables()
            self.bluegreen.layer.create_tables()
            self.token = s.token or ensure_token(s.token_file)
            self._api = ApiServer(
                self, self.metrics_registry, s.http_host, s.http_port, self.token, s.allowed_hosts,
                Limits(read_timeout_s=s.http_read_timeout),
            )  # fmt: skip
            self._api.start()
            self._file.publish(self._api.url)
        except BaseException:
            self._file.release()
            raise
        log.info("runtime %d serving %s on data dir %s", self.pid, self.url, s.data_dir)
        for record in self.records.all():
            if record.desired == Desired.RUNNING and record.state != State.COMPLETED:
                try:
                    self._launch(record, note="resumed")
                except CqrsError as exc:  # one refused deployment must not keep the rest down
                    log.error("cannot resume %s: %s", record.name, exc)
                    record.state, record.error = State.FAILED, str(exc)
                    self.records.save(record)
                    self.records.note(record, "failed", str(exc))
        self._supervisor = threading.Thread(target=self._supervise, name="supervisor", daemon=True)
        self._supervisor.start()

    def close(self) -> None:
        """Stop every deployment gracefully (flush, snapshot), then stop serving. The registry
        keeps wanting them running, so the next runtime resumes them."""
        self._stop.set()
        if self._supervisor is not None:
            self._supervisor.join(10)
        with self._lock:
            for deployment in self.deployments.values():
                deployment.stop()
            for deployment in self.deployments.values():
                self._record_end(deployment)
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        for command_log in self._logs.values():
            command_log.close()
        if self._api is not None:
            self._api.stop()
            self._api = None
        self._file.release()

    # -- deployments ---------------------------------------------------------------------------

    def replay(self, request: ReplayRequest, origin: Origin = Origin.LOCAL) -> DeploymentStatus:
        """Register a new deployment of a spec and start it. `start` is a `--from` (empty: the
        spec's own start); without `follow` it stops at `until` (default: now). Refuses a name
        whose deployment or database already exists, or a spec from the API (`Origin.API`)
        that names a module off the allow-list, before changing anything."""
        spec_text, source, start, until = request.spec, request.source, request.start, request.until
        pipeline = self.specs.parse(spec_text, source, origin)
        name = request.into or pipeline.deployment
        ddl.ident(name)
        with self._lock:
            if self.records.get(name) is not None or self._database_exists(name):
                raise ConfigError(
                    f"database {name} already exists; replay into a new one with --into <name>, "
                    f"or resume a stopped deployment with `cqrs start {name}`"
                )
            start_at = positions.parse_from(start) if start else StartAt(pipeline.spec.source.start)
            until_ms = None if request.follow else positions.parse_until(until or "now")
            topic = pipeline.spec.source.topic or self.settings.topic
            with self._logs_lock:
                starts, stops = positions.resolve(self._log(topic), start_at, until_ms)
            record = Record(
                name=name, pipeline=pipeline.name, version=pipeline.version, spec=spec_text,
                source=source, topic=topic, start=starts, stop=stops, origin=origin,
            )  # fmt: skip
            self.records.save(record)
            self.records.note(record, "created", f"from {start or pipeline.spec.source.start}")
            self._launch(record)
            return self._status(record)

    def create(
        self,
        spec_text: str,
        source: str,
        start: str = "",
        until: str | None = None,
        follow: bool = False,
        into: str | None = None,
    ) -> DeploymentStatus:
        """`replay`, as deploy/cli.py calls it until it calls the Service (issue 14's merge
        removes this)."""
        return self.replay(ReplayRequest(spec_text, source, start, until, follow, into))

    def ensure(self, pipeline: Pipeline, spec_text: str, stop_now: bool = False) -> Deployment:
        """Run a pipeline's own deployment (`cqrs run`): registered on first use, resumed after.
        The first deployment of a pipeline becomes its active one (the stable views read it);
        a later version runs beside it, outside the views, until `cqrs deploy` promotes one.
        `stop_now` bounds this run at the log's current end without changing the record."""
        name = pipeline.deployment
        with self._lock:
            record = self.records.get(name)
            topic = pipeline.spec.source.topic or self.settings.topic
            layer = self.bluegreen.layer
            first = layer.active(pipeline.name) is None
            if record is None:
                with self._logs_lock:
                    starts, _ = positions.resolve(
                        self._log(topic), StartAt(pipeline.spec.source.start), None
                    )
                record = Record(
                    name=name, pipeline=pipeline.name, version=pipeline.version,
                    spec=spec_text, source=pipeline.source, topic=topic, start=starts, stop=None,
                    stage=Stage.ACTIVE if first else Stage.OUTSIDE,
                )  # fmt: skip
                self.records.note(record, "created", "by cqrs run")
            elif self.specs.of(record).spec != pipeline.spec:
                raise ConfigError(
                    f"{name} is registered with another spec; a changed pipeline needs a new "
                    f"version (and a new deployment)"
                )
            record.desired = Desired.RUNNING
            self.records.save(record)
            stop = self._end_offsets(topic) if stop_now else None
            resumed = self.deployments.get(name)
            if stop is not None and resumed is not None and resumed.join(0) is False:
                resumed.stop()  # resumed on open, tailing: this run wants a bound instead
            deployment = self._launch(record, stop_override=stop)
            if record.stage == Stage.ACTIVE and layer.active(pipeline.name) != name:
                layer.switch(pipeline.name, name)
                layer.rebuild(pipeline.name, [(name, pipeline)])
            return deployment

    def start(self, name: str) -> DeploymentStatus:
        return self._status(self.start_deployment(name))

    def stop(self, name: str) -> DeploymentStatus:
        """Stop gracefully and keep it stopped (a later `start` resumes it)."""
        return self._status(self.stop_deployment(name))

    def start_deployment(self, name: str) -> Record:
        """Run it again, and want it running (the next runtime resumes it)."""
        with self._lock:
            record = self._record(name)
            if name in self.deployments and self.deployments[name].join(0) is False:
                return record
            record.desired = Desired.RUNNING
            self.records.save(record)
            self._launch(record, note="started")
            return record

    def stop_deployment(self, name: str) -> Record:
        """Stop gracefully, and want it stopped."""
        with self._lock:
            record = self._record(name)
            record.desired = Desired.STOPPED
            self.records.save(record)
            deployment = self.deployments.get(name)
        if deployment is not None:
            deployment.stop()
            self._record_end(deployment)
        else:
            self.records.note(record, "stopped")
        return record

    def list_deployments(self, everything: bool = False) -> list[DeploymentStatus]:
        """Every deployment's status (retired and aborted ones only with `everything`), by
        pipeline and version."""
        return [self._status(r) for r in listed(self.records.all(), everything)]

    def get_deployment(self, name: str) -> DeploymentStatus:
        return self._status(self._record(name))

    def status(self, name: str | None = None, everything: bool = False) -> list[dict[str, Any]]:
        """As JSON documents, for deploy/cli.py until it calls the Service (issue 14's merge
        removes this)."""
        found = [self.get_deployment(name)] if name else self.list_deployments(everything)
        return [msgspec.to_builtins(s) for s in found]

    def _status(self, record: Record) -> DeploymentStatus:
        status = describe(self.client, record, self._end_offsets, self.specs, self._behind)
        live = self.deployments.get(record.name)
        if live is not None:
            status.state = live.state
            status.consumed = self._sample("cqrs_commands_consumed_total", record)
            status.accepted = self._sample("cqrs_commands_accepted_total", record)
        return status

    def forget(self, name: str) -> None:
        """A deployment is gone (retired or aborted, its database dropped): drop what the
        runtime kept for it, its metric series and its monitoring consumer group."""
        with self._lock:
            deployment = self.deployments.pop(name, None)
            self._restarts.pop(name, None)
        if deployment is not None and deployment.join(0) is False:
            deployment.stop()
        self.metrics.forget(name)
        self.specs.forget(name)
        try:
            self._admin_client().delete_groups([name])
        except KafkaError as exc:  # monitoring only: the broker forgets an empty group anyway
            log.warning("cannot delete the consumer group of %s: %s", name, exc)
        del deployment  # the last reference: what it held goes before the heap is trimmed
        release_memory()

    def settled(self, name: str) -> Deployment | None:
        """The deployment if it has ended for good (completed, stopped, or failed in a way a
        restart cannot cure), None while it runs or waits to be restarted."""
        with self._lock:
            deployment = self.deployments.get(name)
        if deployment is None or deployment.join(0) is False:
            return None
        if deployment.state is State.FAILED:
            cause = root_cause(deployment.error) if deployment.error else None
            return deployment if isinstance(cause, _REFUSALS) else None
        return deployment

    def failure(self, name: str) -> str | None:
        """Why a deployment failed for good (a refusal no restart cures); None otherwise."""
        ended = self.settled(name)
        if ended is None or ended.error is None:
            return None
        return str(root_cause(ended.error))

    def health(self) -> Health:
        return Health("ok", self.pid)

    def deploy_state(self, pipeline: str) -> BlueGreenState:
        return self.bluegreen.state(pipeline)

    def deploy_history(self, pipeline: str) -> History:
        return self.bluegreen.history(pipeline)

    def deploy_init(self, request: InitRequest, origin: Origin = Origin.LOCAL) -> BlueGreenState:
        return self.bluegreen.init(request.spec, request.source, origin)

    def deploy_promote(self, pipeline: str, request: PromoteRequest) -> BlueGreenState:
        return self.bluegreen.promote(pipeline, request.force, request.max_behind, request.wait)

    def deploy_rollback(self, pipeline: str) -> BlueGreenState:
        return self.bluegreen.rollback(pipeline)

    def deploy_abort(self, pipeline: str) -> BlueGreenState:
        return self.bluegreen.abort(pipeline)

    def deploy_cleanup(self, pipeline: str) -> BlueGreenState:
        return self.bluegreen.cleanup(pipeline)

    def query(self, sql: str) -> QueryResult:
        if self._reader is None:
            raise CqrsError("the runtime is not open")
        return self._reader.query(sql)

    def dashboard(self) -> Dashboard:
        """What the built-in dashboard draws: the business panels' rows (a panel whose view the
        active deployment does not serve says so) and each deployment's health."""
        panels = []
        for panel in BUSINESS:
            entry = PanelData(key=panel.key, title=panel.title, kind=panel.kind)
            try:
                entry.rows = self.query(panel.sql(self.settings.query_database)).to_json()["rows"]
            except CqrsError as exc:
                missing = "UNKNOWN_TABLE" in str(exc) or "does not exist" in str(exc)
                entry.error = "not served by the active deployment" if missing else str(exc)
            panels.append(entry)
        deployments = []
        for record in listed(self.records.all()):
            status = self._status(record)
            deployments.append(
                DeploymentHealth(
                    **msgspec.structs.asdict(status),
                    rejected=self._by_label("cqrs_commands_rejected_total", record, "reason"),
                    latency_p99=self._quantile(
                        "cqrs_end_to_end_latency_seconds_bucket", record, 0.99
                    ),
                )
            )
        return Dashboard(panels, deployments)

    # -- inside --------------------------------------------------------------------------------

    def _launch(
        self, record: Record, note: str = "", stop_override: dict[int, int] | None = None
    ) -> Deployment:
        running = self.deployments.get(record.name)
        if running is not None and running.join(0) is False:
            if stop_override is not None:
                raise ConfigError(
                    f"{record.name} is already running in this runtime; stop it first to run "
                    f"it to a bound"
                )
            return running
        pipeline = self.specs.of(record)
        deployment = Deployment(
            DeploymentConfig(
                pipeline=pipeline,
                brokers=self.brokers,
                topic=record.topic,
                clickhouse_dsn=self.settings.clickhouse_dsn,
                recovery_root=self.settings.recovery_dir,
                name=record.name,
                start=StartAt("offsets", offsets=record.start),
                stop_at=stop_override if stop_override is not None else record.stop,
                skips=self.records.skips(record.name),
                careful=self._careful(record.name),
            ),
            self.metrics.for_deployment(pipeline.name, pipeline.version, record.name),
        )
        partitions = deployment.prepare(self.client)
        deployment.start(partitions)
        self.deployments[record.name] = deployment
        record.state = State.RUNNING
        record.error = ""
        self.records.save(record)
        if note:
            self.records.note(record, note)
        return deployment

    def _supervise(self) -> None:
        last_commit = 0.0
        while not self._stop.wait(0.5):
            try:
                self._check_deployments()
                if time.monotonic() - last_commit >= _COMMIT_EVERY_S:
                    self._take_in_new_partitions()
                    self._commit_offsets()
                    self._update_gauges()
                    last_commit = time.monotonic()
            except Exception:  # the supervisor must outlive any one failure
                log.exception("supervisor pass failed")

    def _check_deployments(self) -> None:
        now = time.monotonic()
        with self._lock:
            for name, deployment in list(self.deployments.items()):
                if deployment.join(0) is False:
                    continue
                record = self.records.get(name)
                if record is None:
                    continue
                if deployment.state is State.FAILED and record.desired == Desired.RUNNING:
                    self._count_failure(deployment)
                    cause = root_cause(deployment.error) if deployment.error else None
                    if isinstance(cause, _REFUSALS):
                        if record.state != State.FAILED:
                            self._record_end(deployment)
                        continue
                    attempts, due = self._restarts.get(name, (0, 0.0))
                    if due == 0.0:
                        pause = min(_MAX_RESTART_S, _FIRST_RESTART_S * 2**attempts)
                        self._restarts[name] = (attempts + 1, now + pause)
                        self._record_end(deployment, f"restart in {pause:.0f}s")
                    elif now >= due:
                        self._restarts[name] = (attempts, 0.0)
                        try:
                            self._launch(record, note=f"restarted (attempt {attempts})")
                        except CqrsError as exc:
                            record.state, record.error = State.FAILED, str(exc)
                            self.records.save(record)
                    continue
                if record.state != deployment.state:
                    self._record_end(deployment)
                    self._restarts.pop(name, None)

    def _count_failure(self, deployment: Deployment) -> None:
        """Count a failure at the record it names; the last one allowed becomes `StuckAt`."""
        cause = root_cause(deployment.error) if deployment.error else None
        if not isinstance(cause, FailedAt):
            return
        site = (cause.partition, cause.offset)
        last, count, counted = self._failed_at.get(deployment.name, (site, 0, None))
        if counted is deployment:
            return
        count = count + 1 if last == site else 1
        self._failed_at[deployment.name] = (site, count, deployment)
        if count >= FAILURES_AT_ONE_PLACE:
            partition, offset = site
            deployment.error = StuckAt(
                f"{deployment.name} {cause} ({count} times in a row); to pass over that record "
                f"(it goes to the DLQ as skipped_by_operator): cqrs skip {deployment.name} "
                f"--partition {partition} --offset {offset}"
            )

    def _careful(self, name: str) -> dict[int, int]:
        """After a failure at a batch: its stretch of the log, to be read a record at a time."""
        failed = self._failed_at.get(name)
        if failed is None:
            return {}
        (partition, offset), _, _ = failed
        return {partition: offset + BATCH_SIZE}

    def skip(self, name: str, partition: int, offset: int) -> DeploymentStatus:
        """Pass over one record of a deployment from now on (to the DLQ, `skipped_by_operator`)
        and run it again if it stopped at that record."""
        with self._lock:
            record = self._record(name)
            with self._logs_lock:
                partitions = self._log(record.topic).partitions()
            if partition not in partitions:
                raise ConfigError(f"{record.topic} has no partition {partition}: {partitions}")
            self.records.note(record, "skip", f"{partition}:{offset}")
            self._failed_at.pop(name, None)
            self._restarts.pop(name, None)
            running = self.deployments.get(name)
            if running is not None and running.join(0) is False:
                running.stop()  # the source takes its skips when it starts
            if record.desired == Desired.RUNNING:
                self._launch(record, note=f"restarted to skip {partition}:{offset}")
            return self._status(record)

    def _take_in_new_partitions(self) -> None:
        """Restart each tailing deployment whose log has partitions it does not read."""
        with self._lock:
            running = [
                d
                for d in self.deployments.values()
                if d.state is State.RUNNING and d.config.stop_at is None
                and d.config.partitions is None
            ]  # fmt: skip
            fresh: dict[str, list[int]] = {}
            for deployment in running:
                topic = deployment.config.topic
                if topic not in fresh:
                    with self._logs_lock:
                        fresh[topic] = self._log(topic).partitions(fresh=True)
                added = sorted(set(fresh[topic]) - set(deployment.partitions))
                record = self.records.get(deployment.name)
                if not added or record is None or record.desired != Desired.RUNNING:
                    continue
                log.info("%s: taking in new partitions %s of %s", record.name, added, topic)
                deployment.stop()
                self._launch(record, note=f"took in new partitions {added}")

    def _record_end(self, deployment: Deployment, detail: str = "") -> None:
        record = self.records.get(deployment.name)
        if record is None or (record.state == deployment.state and not detail):
            return
        record.state = deployment.state
        if deployment.error is not None:
            record.error = str(root_cause(deployment.error))
        self.records.save(record)
        self.records.note(record, deployment.state, detail or record.error)

    def _commit_offsets(self) -> None:
        """Monitoring only: Bytewax recovery stays the one record of where to resume."""
        with self._lock:
            running = [d for d in self.deployments.values() if d.state is State.RUNNING]
        for deployment in running:
            tables = [p.name for p in deployment.config.pipeline.projections if p.table is not None]
            offsets = written(self.client, deployment.database, tables)
            if not offsets:
                continue
            topic = deployment.config.topic
            try:
                results = self._admin_client().alter_group_offsets(
                    deployment.name,
                    {TopicPartition(topic, p): OffsetAndMetadata(o) for p, o in offsets.items()},
                )
            except KafkaError as exc:  # the broker may be starting: the next pass commits
                log.warning("committing the offsets of %s failed: %r", deployment.name, exc)
                continue
            failed = {tp.partition: e.__name__ for tp, e in results.items() if e.errno != 0}
            if failed:
                log.warning("committing the offsets of %s failed: %s", deployment.name, failed)

    def _admin_client(self) -> KafkaAdminClient:
        with self._admin_lock:
            if self._admin is None:
                self._admin = KafkaAdminClient(bootstrap_servers=self.brokers)
            return self._admin

    def _update_gauges(self) -> None:
        """Deployment state and progress, for Prometheus."""
        with self._lock:
            deployments = list(self.deployments.values())
        for deployment in deployments:
            deployment.metrics.set_state(deployment.state.value)
            record = self.records.get(deployment.name)
            if record is None:
                continue
            status = describe(self.client, record, self._end_offsets, self.specs)
            if status.total:
                deployment.metrics.set_progress(status.done / status.total)

    def _log(self, topic: str) -> CommandLog:
        if topic not in self._logs:
            self._logs[topic] = CommandLog(self.brokers, topic)
        return self._logs[topic]

    def _end_offsets(self, topic: str) -> dict[int, int]:
        with self._logs_lock:
            return self._log(topic).end_offsets()

    def _behind(self, topic: str, offsets: dict[int, int]) -> dict[int, float | None]:
        with self._logs_lock:
            return self._log(topic).behind(offsets)

    def _record(self, name: str) -> Record:
        record = self.records.get(name)
        if record is None:
            raise NotFound(f"no deployment named {name!r}; `cqrs status` lists them")
        return record

    def _database_exists(self, name: str) -> bool:
        found = self.client.command(
            f"SELECT count() FROM system.databases WHERE name = {ddl.literal(name)}"
        )
        return bool(int(found))

    def _samples(self, metric: str, record: Record) -> list[Any]:
        labels = {
            "pipeline": record.pipeline,
            "version": str(record.version),
            "deployment": record.name,
        }
        return [
            s
            for family in self.metrics_registry.collect()
            for s in family.samples
            if s.name == metric and all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def _by_label(self, metric: str, record: Record, label: str) -> dict[str, float]:
        totals: dict[str, float] = {}
        for s in self._samples(metric, record):
            totals[s.labels[label]] = totals.get(s.labels[label], 0.0) + s.value
        return totals

    def _quantile(self, buckets: str, record: Record, q: float) -> float | None:
        """The upper bound of the histogram bucket holding the q-quantile."""
        counts = sorted((float(s.labels["le"]), s.value) for s in self._samples(buckets, record))
        total = counts[-1][1] if counts else 0
        if not total:
            return None
        return next(le for le, count in counts if count >= q * total)

    def _sample(self, metric: str, record: Record) -> float:
        labels = {
            "pipeline": record.pipeline,
            "version": str(record.version),
            "deployment": record.name,
        }
        return sum(
            s.value
            for family in self.metrics_registry.collect()
            for s in family.samples
            if s.name == metric and all(s.labels.get(k) == v for k, v in labels.items())
        )
