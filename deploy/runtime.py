"""The runtime: the one long-running process of a data dir.

It holds the ClickHouse store (with embedded chDB no other process may open it), runs
deployments in threads, and serves the HTTP API through which the CLI queries and controls it.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from clickhouse_connect.driver.client import Client
from prometheus_client import CollectorRegistry

from commands.errors import CqrsError
from dataflows.metrics import Metrics
from dataflows.source import StartAt
from dataflows.spec import Pipeline
from deploy.api import ApiServer
from deploy.deployment import Deployment, DeploymentConfig
from deploy.query import QueryResult, run_readonly
from deploy.runtime_file import RuntimeFile
from deploy.settings import Settings
from sinks import ddl
from sinks.store import open_client

log = logging.getLogger(__name__)


class Runtime:
    def __init__(
        self, settings: Settings, brokers: str, registry: CollectorRegistry | None = None
    ) -> None:
        self.settings = settings
        self.brokers = brokers
        self.pid = os.getpid()
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self._file = RuntimeFile(settings.data_dir)
        self._client: Client | None = None
        self._api: ApiServer | None = None
        self.deployments: dict[str, Deployment] = {}

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

    def open(self) -> None:
        """Take the data dir, open the store, serve the API, and say where."""
        s = self.settings
        self._file.acquire()
        try:
            # A one-off `cqrs query` may hold the embedded store for a moment: wait for it.
            self._client = open_client(s.clickhouse_dsn, wait_s=30.0)
            self._api = ApiServer(self, s.http_host, s.http_port, s.token)
            self._api.start()
            self._file.publish(self._api.url)
        except BaseException:
            self._file.release()
            raise
        log.info("runtime %d serving %s on data dir %s", self.pid, self.url, s.data_dir)

    def run_pipeline(
        self,
        pipeline: Pipeline,
        start: StartAt | None = None,
        stop_at: dict[int, int] | None = None,
    ) -> Deployment:
        """Prepare the deployment's database and start its dataflow in a thread."""
        name = pipeline.deployment
        if name in self.deployments and self.deployments[name].join(0) is False:
            raise CqrsError(f"deployment {name} is already running in this runtime")
        s = self.settings
        deployment = Deployment(
            DeploymentConfig(
                pipeline=pipeline,
                brokers=self.brokers,
                topic=pipeline.spec.source.topic or s.topic,
                clickhouse_dsn=s.clickhouse_dsn,
                recovery_root=s.recovery_dir,
                start=start or StartAt(pipeline.spec.source.start),
                stop_at=stop_at,
            ),
            self.metrics.for_deployment(pipeline.name, pipeline.version, name),
        )
        partitions = deployment.prepare(self.client)
        self._ensure_views(pipeline, deployment.database)
        deployment.start(partitions)
        self.deployments[name] = deployment
        return deployment

    def _ensure_views(self, pipeline: Pipeline, database: str) -> None:
        views = self.settings.query_database
        self.client.command(ddl.create_database(views))
        for projection in pipeline.projections:
            if projection.table is None:
                continue
            select = projection.projector.view(ddl.qualified(database, projection.table.name))
            self.client.command(ddl.create_view_if_missing(views, projection.name, select))

    def query(self, sql: str) -> QueryResult:
        return run_readonly(self.client, sql)

    def describe(self) -> list[dict[str, Any]]:
        return [
            {"name": d.name, "state": d.state.value, "error": repr(d.error) if d.error else None}
            for d in self.deployments.values()
        ]

    def close(self) -> None:
        """Stop every deployment gracefully (flush, snapshot), then stop serving."""
        for deployment in self.deployments.values():
            deployment.stop()
        if self._api is not None:
            self._api.stop()
            self._api = None
        self._file.release()
