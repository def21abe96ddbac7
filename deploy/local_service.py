"""The `Service` (deploy.service) as the runtime does it in its own process: mixed into
`deploy.runtime.Runtime`, whose deployments it reads and changes. Statuses come from the
registry, the progress rows and the broker (`deploy.status`), with what only the runtime that
runs a deployment knows added: its state now and its counters."""

from __future__ import annotations

import threading

from clickhouse_connect.driver.client import Client
from prometheus_client import CollectorRegistry

from core.errors import ConfigError, NotFound
from core.panels import Panels
from dataflows.source import StartAt
from deploy import positions
from deploy.bluegreen import BlueGreen
from deploy.dashboard import assemble_dashboard, metric_total
from deploy.deployment import Deployment
from deploy.logs import CommandLogs
from deploy.model import (
    BlueGreenState,
    Dashboard,
    DeploymentStatus,
    Desired,
    Health,
    History,
    InitRequest,
    Origin,
    PromoteRequest,
    QueryResult,
    ReplayRequest,
)
from deploy.query import Reader
from deploy.records import Record, Records
from deploy.settings import Settings
from deploy.specs import Specs
from deploy.status import describe, listed
from deploy.supervisor import Supervisor
from sinks import ddl


class LocalService:
    """Reads what these name, and calls the runtime's `launch`, `start_deployment`,
    `stop_deployment`, `database_exists` and `topic_of` (all set by `Runtime`)."""

    settings: Settings
    pid: int
    lock: threading.RLock
    deployments: dict[str, Deployment]
    specs: Specs
    logs: CommandLogs
    metrics_registry: CollectorRegistry
    client: Client
    records: Records
    reader: Reader
    bluegreen: BlueGreen
    supervisor: Supervisor
    #: the domain's dashboard panels (None: the dashboard shows health only)
    panels: Panels | None

    def health(self) -> Health:
        return Health("ok", self.pid)

    def list_deployments(self, everything: bool = False) -> list[DeploymentStatus]:
        """Every deployment's status (retired and aborted ones only with `everything`), by
        pipeline and version."""
        return [self._status(r) for r in listed(self.records.all(), everything)]

    def get_deployment(self, name: str) -> DeploymentStatus:
        return self._status(self._record(name))

    def replay(self, request: ReplayRequest, origin: Origin = Origin.LOCAL) -> DeploymentStatus:
        """Register a new deployment of a spec and start it. `start` is a `--from` (empty: the
        spec's own start); without `follow` it stops at `until` (default: now). Refuses a name
        whose deployment or database already exists, or a spec from the API (`Origin.API`)
        that names a module off the allow-list, before changing anything."""
        pipeline = self.specs.parse(request.spec, request.source, origin)
        name = request.into or pipeline.deployment
        ddl.ident(name)
        with self.lock:
            if self.records.get(name) is not None or self.database_exists(name):
                raise ConfigError(
                    f"database {name} already exists; replay into a new one with --into <name>, "
                    f"or resume a stopped deployment with `cqrs start {name}`"
                )
            start = request.start
            start_at = positions.parse_from(start) if start else StartAt(pipeline.spec.source.start)
            until_ms = None if request.follow else positions.parse_until(request.until or "now")
            topic = self.topic_of(pipeline)
            starts, stops = self.logs.resolve(topic, start_at, until_ms)
            record = Record(
                name=name, pipeline=pipeline.name, version=pipeline.version, spec=request.spec,
                source=request.source, topic=topic, start=starts, stop=stops, origin=origin,
                processes=request.processes, workers=request.workers,
            )  # fmt: skip
            self.records.save(record)
            self.records.note(record, "created", f"from {start or pipeline.spec.source.start}")
            self.launch(record)
            return self._status(record)

    def start(self, name: str) -> DeploymentStatus:
        return self._status(self.start_deployment(name))

    def stop(self, name: str) -> DeploymentStatus:
        """Stop gracefully and keep it stopped (a later `start` resumes it)."""
        return self._status(self.stop_deployment(name))

    def skip(self, name: str, partition: int, offset: int) -> DeploymentStatus:
        """Pass over one record of a deployment from now on (to the DLQ, `skipped_by_operator`)
        and run it again if it stopped at that record."""
        with self.lock:
            record = self._record(name)
            partitions = self.logs.partitions(record.topic)
            if partition not in partitions:
                raise ConfigError(f"{record.topic} has no partition {partition}: {partitions}")
            self.records.note(record, "skip", f"{partition}:{offset}")
            self.supervisor.reset(name)
            running = self.deployments.get(name)
            if running is not None and running.join(0) is False:
                running.stop()  # the source takes its skips when it starts
            if record.desired == Desired.RUNNING:
                self.launch(record, note=f"restarted to skip {partition}:{offset}")
            return self._status(record)

    def query(self, sql: str) -> QueryResult:
        return self.reader.query(sql)

    def dashboard(self) -> Dashboard:
        statuses = [(self._status(r), r) for r in listed(self.records.all())]
        return assemble_dashboard(
            self.query, statuses, self.metrics_registry, self.settings.query_database, self.panels
        )

    def deploy_state(self, pipeline: str) -> BlueGreenState:
        return self.bluegreen.state(pipeline)

    def deploy_history(self, pipeline: str) -> History:
        return self.bluegreen.history(pipeline)

    def deploy_init(self, request: InitRequest, origin: Origin = Origin.LOCAL) -> BlueGreenState:
        return self.bluegreen.init(
            request.spec, request.source, origin, request.processes, request.workers
        )

    def deploy_promote(self, pipeline: str, request: PromoteRequest) -> BlueGreenState:
        return self.bluegreen.promote(pipeline, request.force, request.max_behind, request.wait)

    def deploy_rollback(self, pipeline: str) -> BlueGreenState:
        return self.bluegreen.rollback(pipeline)

    def deploy_abort(self, pipeline: str) -> BlueGreenState:
        return self.bluegreen.abort(pipeline)

    def deploy_cleanup(self, pipeline: str) -> BlueGreenState:
        return self.bluegreen.cleanup(pipeline)

    # -- inside --------------------------------------------------------------------------------

    def _status(self, record: Record) -> DeploymentStatus:
        status = describe(self.client, record, self.logs.end_offsets, self.specs, self.logs.behind)
        live = self.deployments.get(record.name)
        if live is not None:
            status.state = live.state
            status.consumed = metric_total(
                self.metrics_registry, "cqrs_commands_consumed_total", record
            )
            status.accepted = metric_total(
                self.metrics_registry, "cqrs_commands_accepted_total", record
            )
            status.cluster = live.processes_status()
        return status

    def _record(self, name: str) -> Record:
        record = self.records.get(name)
        if record is None:
            raise NotFound(f"no deployment named {name!r}; `cqrs status` lists them")
        return record
