"""The `Service` of a data dir that no runtime holds, for the commands that only read: the
statuses come from the registry, the progress rows and the broker, the queries from a
read-only session on the store, all opened in the calling process. What changes deployments
needs a runtime, and says so."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NoReturn

from core.errors import ConfigError, NotFound
from deploy.model import (
    BlueGreenState,
    Dashboard,
    DeploymentStatus,
    Health,
    History,
    InitRequest,
    MemberReport,
    MemberRun,
    Origin,
    PromoteRequest,
    QueryResult,
    ReplayRequest,
)
from deploy.query import Reader
from deploy.settings import Settings
from sinks.store import StoreBusy, open_client


class StoreService:
    def __init__(self, settings: Settings, brokers: Callable[[], str]) -> None:
        """`brokers` is asked only for statuses (a query needs no broker)."""
        self.settings = settings
        self._brokers = brokers

    def list_deployments(self, everything: bool = False) -> list[DeploymentStatus]:
        # Statuses need the broker's offsets and every spec parsed (kafka-python, the filters,
        # Bytewax): imported here, so `cqrs query` without a runtime loads only the query path.
        from deploy.logs import CommandLogs
        from deploy.records import Records
        from deploy.specs import Specs
        from deploy.status import describe, listed
        from operators.code import allow_list

        client = open_client(self.settings.clickhouse_dsn)
        s = self.settings
        records = Records(client, s.control_database, s.clickhouse_cluster)
        records.create_tables()
        specs = Specs(allow_list(self.settings.allow_modules))
        logs = CommandLogs(self._brokers())
        try:
            return [
                describe(client, r, logs.end_offsets, specs, logs.behind)
                for r in listed(records.all(), everything)
            ]
        finally:
            logs.close()

    def get_deployment(self, name: str) -> DeploymentStatus:
        found = [s for s in self.list_deployments(everything=True) if s.name == name]
        if not found:
            raise NotFound(f"no deployment named {name!r}; `cqrs status` lists them")
        return found[0]

    def query(self, sql: str, wait_s: float = 30.0) -> QueryResult:
        """A runtime that is starting holds the embedded store before it says where it
        serves, so a busy store is retried for `wait_s`."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                reader = Reader(self.settings.reader_dsn, self.settings.query_timeout)
            except StoreBusy:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)
                continue
            return reader.query(sql)

    def health(self) -> Health:
        self._refuse()

    def replay(self, request: ReplayRequest, origin: Origin = Origin.LOCAL) -> DeploymentStatus:
        self._refuse()

    def member_run(self, name: str, report: MemberReport) -> MemberRun:
        self._refuse()

    def start(self, name: str) -> DeploymentStatus:
        self._refuse()

    def stop(self, name: str) -> DeploymentStatus:
        self._refuse()

    def skip(self, name: str, partition: int, offset: int) -> DeploymentStatus:
        self._refuse()

    def dashboard(self) -> Dashboard:
        self._refuse()

    def deploy_state(self, pipeline: str) -> BlueGreenState:
        self._refuse()

    def deploy_history(self, pipeline: str) -> History:
        self._refuse()

    def deploy_init(self, request: InitRequest, origin: Origin = Origin.LOCAL) -> BlueGreenState:
        self._refuse()

    def deploy_promote(self, pipeline: str, request: PromoteRequest) -> BlueGreenState:
        self._refuse()

    def deploy_rollback(self, pipeline: str) -> BlueGreenState:
        self._refuse()

    def deploy_abort(self, pipeline: str) -> BlueGreenState:
        self._refuse()

    def deploy_cleanup(self, pipeline: str) -> BlueGreenState:
        self._refuse()

    def _refuse(self) -> NoReturn:
        raise ConfigError(
            f"no runtime runs on data dir {self.settings.data_dir}; start one with `cqrs serve`"
        )
