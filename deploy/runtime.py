"""The runtime: the one long-running process of a data dir, and the `Service` of that process.

It holds the ClickHouse store (with embedded chDB no other process may open it), runs
deployments in threads, and serves the HTTP API through which other processes call the same
service. On start, the runtime resumes every deployment the registry says should be running: a
replay stopped by a restart goes on where it was. What it delegates, each built once when it
opens: supervision of the deployments (`deploy.supervisor`), blue/green (`deploy.bluegreen`,
which asks the runtime for deployments through `DeploymentHost`), the broker handles
(`deploy.logs`), parsed specs (`deploy.specs`) and the dashboard (`deploy.dashboard`).

A runtime lives through many deploys, so what it holds per deployment is bounded by the
deployments that are live: a deployment's own clients close when it stops, the offsets of
every deployment go through one admin client, and a deployment that is gone leaves no metric
series, no parsed spec and no consumer group behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Collection

from clickhouse_connect.driver.client import Client
from prometheus_client import CollectorRegistry

from api.security import Limits
from api.server import ApiServer
from core.errors import ConfigError, CqrsError, NotFound
from dataflows.metrics import Metrics
from dataflows.source import StartAt
from dataflows.spec import Pipeline
from deploy.bluegreen import BlueGreen
from deploy.deployment import Deployment, DeploymentConfig
from deploy.local_service import LocalService
from deploy.logs import CommandLogs
from deploy.memory import release_memory
from deploy.model import Desired, MemberReport, MemberRun, Stage, State
from deploy.panels import load_panels
from deploy.query import Reader
from deploy.records import Record, Records
from deploy.runtime_file import RuntimeFile
from deploy.settings import Settings
from deploy.specs import Specs
from deploy.stable import StableLayer
from deploy.supervisor import Supervisor, root_cause
from deploy.token import ensure_token
from operators.code import allow_list
from sinks import ddl
from sinks.store import open_client

log = logging.getLogger(__name__)


class Runtime(LocalService):
    def __init__(
        self,
        settings: Settings,
        brokers: str,
        metrics_registry: CollectorRegistry | None = None,
        reserved: Collection[str] = (),
        hosts: dict[str, list[str]] | None = None,
    ) -> None:
        """`reserved`: deployments the caller starts itself with `ensure` right after opening
        (`cqrs run`'s own): open does not resume them, so they start once, on the shape and
        bound `ensure` asks for, rather than on the registered ones and then again."""
        self.settings = settings
        #: deployments that run as a cluster across hosts, this process their process 0:
        #: their Bytewax addresses by name (`cqrs run --addresses … --process-id 0`)
        self.hosts = hosts or {}
        self.brokers = brokers
        self.pid = os.getpid()
        self._reserved = frozenset(reserved)
        self.metrics_registry = (
            metrics_registry if metrics_registry is not None else CollectorRegistry()
        )
        self.metrics = Metrics(self.metrics_registry)
        #: each record's spec, parsed once; a spec from the API is held to the allow-list
        self.specs = Specs(allow_list(settings.allow_modules))
        #: the domain's dashboard panels, imported (or refused) before anything opens
        self.panels = load_panels(settings)
        self.logs = CommandLogs(brokers)
        #: one change of the deployments at a time (API threads, the supervisor, blue/green)
        self.lock = threading.RLock()
        self.deployments: dict[str, Deployment] = {}
        self.token = ""
        self._file = RuntimeFile(settings.data_dir)
        self._client: Client | None = None
        # Read-only queries get a session of their own (`readonly` is set on the session)
        self._reader: Reader | None = None
        self._records: Records | None = None
        self._supervisor: Supervisor | None = None
        self._bluegreen: BlueGreen | None = None
        self._api: ApiServer | None = None

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
    def reader(self) -> Reader:
        if self._reader is None:
            raise CqrsError("the runtime is not open")
        return self._reader

    @property
    def records(self) -> Records:
        if self._records is None:
            raise CqrsError("the runtime is not open")
        return self._records

    @property
    def bluegreen(self) -> BlueGreen:
        if self._bluegreen is None:
            raise CqrsError("the runtime is not open")
        return self._bluegreen

    @property
    def supervisor(self) -> Supervisor:
        if self._supervisor is None:
            raise CqrsError("the runtime is not open")
        return self._supervisor

    @property
    def url(self) -> str:
        return self._api.url if self._api is not None else ""

    @property
    def dashboard_url(self) -> str:
        """The dashboard's address with the token in its fragment (which no request carries):
        printed once, like Jupyter's, for the user to open."""
        return f"{self.url}/dashboard#token={self.token}" if self._api is not None else ""

    # -- life ----------------------------------------------------------------------------------

    def open(self) -> None:
        """Take the data dir, open the store, serve the API, resume what should run."""
        s = self.settings
        self._file.acquire()
        try:
            # A one-off `cqrs query` may hold the embedded store for a moment: wait for it.
            self._client = open_client(s.clickhouse_dsn, wait_s=30.0)
            self._reader = Reader(s.reader_dsn, s.query_timeout)
            self._records = Records(self._client, s.control_database, s.clickhouse_cluster)
            self._records.create_tables()
            layer = StableLayer(
                self._client, s.control_database, s.query_database, s.clickhouse_cluster
            )
            layer.create_tables()
            self._bluegreen = BlueGreen(self, layer)
            self._supervisor = Supervisor(self, self.logs, self._client, self.specs)
            self.token = s.token or ensure_token(s.token_file)
            self._api = ApiServer(
                self, self.metrics_registry, s.http_host, s.http_port, self.token,
                s.allowed_hosts, Limits(read_timeout_s=s.http_read_timeout),
            )  # fmt: skip
            self._api.start()
            self._file.publish(self._api.url)
        except BaseException:
            self._file.release()
            raise
        log.info("runtime %d serving %s on data dir %s", self.pid, self.url, s.data_dir)
        for record in self.records.all():
            if record.name in self._reserved:
                continue
            if record.desired == Desired.RUNNING and record.state != State.COMPLETED:
                try:
                    self.launch(record, note="resumed")
                except CqrsError as exc:  # one refused deployment must not keep the rest down
                    log.error("cannot resume %s: %s", record.name, exc)
                    record.state, record.error = State.FAILED, str(exc)
                    self.records.save(record)
                    self.records.note(record, "failed", str(exc))
        self._supervisor.start()

    def close(self) -> None:
        """Stop every deployment gracefully (flush, snapshot), then stop serving. The registry
        keeps wanting them running, so the next runtime resumes them."""
        if self._supervisor is not None:
            self._supervisor.stop()
        with self.lock:
            for deployment in self.deployments.values():
                deployment.stop()
            for deployment in self.deployments.values():
                self.supervisor.record_end(deployment)
        self.logs.close()
        if self._api is not None:
            self._api.stop()
            self._api = None
        self._file.release()

    # -- the deployments (what the supervisor and blue/green ask) ------------------------------

    def launch(
        self, record: Record, note: str = "", stop_override: dict[int, int] | None = None
    ) -> Deployment:
        """Run a registered deployment in this runtime (the one that runs already, if any)."""
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
                cluster=self.settings.clickhouse_cluster,
                recovery_root=self.settings.recovery_dir,
                name=record.name,
                start=StartAt("offsets", offsets=record.start),
                stop_at=stop_override if stop_override is not None else record.stop,
                skips=self.records.skips(record.name),
                careful=self.supervisor.careful(record.name),
                processes=record.processes,
                workers=record.workers,
                addresses=self.hosts.get(record.name),
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

    def start_deployment(self, name: str) -> Record:
        """Run it again, and want it running (the next runtime resumes it)."""
        with self.lock:
            record = self._record(name)
            if name in self.deployments and self.deployments[name].join(0) is False:
                return record
            record.desired = Desired.RUNNING
            self.records.save(record)
            self.launch(record, note="started")
            return record

    def stop_deployment(self, name: str) -> Record:
        """Stop gracefully, and want it stopped (a later start resumes it)."""
        with self.lock:
            record = self._record(name)
            record.desired = Desired.STOPPED
            self.records.save(record)
            deployment = self.deployments.get(name)
        if deployment is not None:
            deployment.stop()
            self.supervisor.record_end(deployment)
        else:
            self.records.note(record, "stopped")
        return record

    def topic_of(self, pipeline: Pipeline) -> str:
        return pipeline.spec.source.topic or self.settings.topic

    def start_offsets(self, topic: str, start: StartAt) -> dict[int, int]:
        """Where a new tailing deployment of `topic` starts."""
        starts, _ = self.logs.resolve(topic, start, None)
        return starts

    def database_exists(self, name: str) -> bool:
        found = self.client.command(
            f"SELECT count() FROM system.databases WHERE name = {ddl.literal(name)}"
        )
        return bool(int(found))

    def drop(self, name: str) -> None:
        """A deployment is gone (retired or aborted): its database and recovery state, then
        what the runtime kept for it, its metric series and its monitoring consumer group."""
        self.client.command(ddl.drop_database(name, self.settings.clickhouse_cluster))
        shutil.rmtree(self.settings.recovery_dir / name, ignore_errors=True)
        with self.lock:
            deployment = self.deployments.pop(name, None)
            self.supervisor.reset(name)
        if deployment is not None and deployment.join(0) is False:
            deployment.stop()
        self.metrics.forget(name)
        self.specs.forget(name)
        self.logs.delete_group(name)
        del deployment  # the last reference: what it held goes before the heap is trimmed
        release_memory()

    def member_run(self, name: str, report: MemberReport) -> MemberRun:
        """The run a member of a cluster across hosts joins (`deploy.member`)."""
        with self.lock:
            deployment = self.deployments.get(name)
        run = deployment.member_run(report) if deployment is not None else None
        if run is None:
            raise NotFound(f"{name} runs no cluster across hosts in this runtime now")
        return run

    def settled(self, name: str) -> Deployment | None:
        """The deployment if it has ended for good (completed, stopped, or failed in a way a
        restart cannot cure), None while it runs or waits to be restarted."""
        with self.lock:
            deployment = self.deployments.get(name)
        return self.supervisor.settled(deployment)

    def failure(self, name: str) -> str | None:
        """Why a deployment failed for good (a refusal no restart cures); None otherwise."""
        ended = self.settled(name)
        if ended is None or ended.error is None:
            return None
        return str(root_cause(ended.error))

    def ensure(
        self,
        pipeline: Pipeline,
        spec_text: str,
        stop_now: bool = False,
        processes: int | None = None,
        workers: int | None = None,
    ) -> Deployment:
        """Run a pipeline's own deployment (`cqrs run`): registered on first use, resumed after.
        The first deployment of a pipeline becomes its active one (the stable views read it);
        a later version runs beside it, outside the views, until `cqrs deploy` promotes one.
        `stop_now` bounds this run at the log's current end without changing the record. A
        shape (`processes`, `workers`) other than the registered one rescales it: it resumes
        from its snapshots on the new shape; None keeps the registered one (1 when new)."""
        name = pipeline.deployment
        with self.lock:
            record = self.records.get(name)
            topic = self.topic_of(pipeline)
            layer = self.bluegreen.layer
            first = layer.active(pipeline.name) is None
            if record is None:
                record = Record(
                    name=name, pipeline=pipeline.name, version=pipeline.version,
                    spec=spec_text, source=pipeline.source, topic=topic,
                    start=self.start_offsets(topic, StartAt(pipeline.spec.source.start)),
                    stop=None, stage=Stage.ACTIVE if first else Stage.OUTSIDE,
                )  # fmt: skip
                self.records.note(record, "created", "by cqrs run")
            elif self.specs.of(record).spec != pipeline.spec:
                raise ConfigError(
                    f"{name} is registered with another spec; a changed pipeline needs a new "
                    f"version (and a new deployment)"
                )
            processes = record.processes if processes is None else processes
            workers = record.workers if workers is None else workers
            rescaled = (record.processes, record.workers) != (processes, workers)
            record.desired = Desired.RUNNING
            record.processes, record.workers = processes, workers
            self.records.save(record)
            stop = self.logs.end_offsets(topic) if stop_now else None
            resumed = self.deployments.get(name)
            if (stop is not None or rescaled) and resumed is not None and resumed.join(0) is False:
                resumed.stop()  # running as it was: this run wants a bound or a shape
            deployment = self.launch(record, stop_override=stop)
            if record.stage == Stage.ACTIVE and layer.active(pipeline.name) != name:
                layer.switch(pipeline.name, name)
                layer.rebuild(pipeline.name, [(name, pipeline)])
            return deployment
