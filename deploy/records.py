"""The deployment registry: which deployments exist, what each should be doing, how each
ended, and their history. It is a ClickHouse table, so every process sees the same truth.

A record holds the spec text itself (not a path), and the concrete offsets the deployment
starts and stops at, so a runtime restarted tomorrow resumes exactly the same deployments.
"""

from __future__ import annotations

import time

import msgspec
from clickhouse_connect.driver.client import Client

from core.schema import Table
from deploy.model import Desired, Event, Origin, Stage, State
from sinks.ddl import create_database, create_table, literal, on_cluster, qualified

DEPLOYMENTS = Table(
    name="deployments",
    columns=(
        ("name", "String"),
        ("pipeline", "LowCardinality(String)"),
        ("version", "UInt32"),
        ("spec", "String"),
        ("source", "String"),
        ("topic", "String"),
        ("start", "String"),
        ("stop", "String"),
        ("desired", "LowCardinality(String)"),
        ("state", "LowCardinality(String)"),
        ("stage", "LowCardinality(String)"),
        ("error", "String"),
        ("created_at", "DateTime64(3, 'UTC')"),
        ("updated_at", "DateTime64(3, 'UTC')"),
        ("revision", "UInt64"),
        ("origin", "LowCardinality(String)"),
        ("processes", "UInt16"),
        ("workers", "UInt16"),
    ),
    order_by=("name",),
    version="revision",
)
EVENTS = Table(
    name="deployment_events",
    columns=(
        ("name", "String"),
        ("pipeline", "LowCardinality(String)"),
        ("at", "DateTime64(3, 'UTC')"),
        ("event", "LowCardinality(String)"),
        ("detail", "String"),
    ),
    order_by=("pipeline", "at", "name"),
)


class Record(msgspec.Struct):
    """One deployment as the registry knows it. `start`/`stop` are offsets per partition
    (`stop` None: it tails the log); `desired` is running or stopped; `state` how it is;
    `stage` its place in blue/green (`Stage.OUTSIDE` for a deployment outside the stable layer, a
    replay into a database of its own); `origin` where the spec came from (see `Origin`)."""

    name: str
    pipeline: str
    version: int
    spec: str
    source: str
    topic: str
    start: dict[int, int]
    stop: dict[int, int] | None
    desired: Desired = Desired.RUNNING
    state: State = State.CREATED
    stage: Stage = Stage.OUTSIDE
    error: str = ""
    created_at: int = 0
    origin: Origin = Origin.LOCAL
    #: its Bytewax cluster on one machine: processes, and workers in each
    processes: int = 1
    workers: int = 1


class Records:
    """The deployment registry's two tables: one row per deployment (its latest revision
    wins) and its history of events."""

    def __init__(self, client: Client, database: str, cluster: str | None = None) -> None:
        self._client = client
        self._database = database
        self._cluster = cluster

    def create_tables(self) -> None:
        """On a cluster, every host holds the whole registry (replicated, not sharded)."""
        cluster = self._cluster
        self._client.command(create_database(self._database, cluster))
        self._client.command(create_table(self._database, DEPLOYMENTS, cluster))
        self._client.command(  # registries made before specs had an origin
            f"ALTER TABLE {qualified(self._database, DEPLOYMENTS.name)}{on_cluster(cluster)} "
            f"ADD COLUMN IF NOT EXISTS origin LowCardinality(String)"
        )
        for shape in ("processes", "workers"):  # registries made before clusters: one
            self._client.command(
                f"ALTER TABLE {qualified(self._database, DEPLOYMENTS.name)}{on_cluster(cluster)} "
                f"ADD COLUMN IF NOT EXISTS {shape} UInt16 DEFAULT 1"
            )
        self._client.command(create_table(self._database, EVENTS, cluster))

    def save(self, record: Record) -> None:
        now = int(time.time() * 1000)
        if not record.created_at:
            record.created_at = now
        row = (
            record.name, record.pipeline, record.version, record.spec, record.source,
            record.topic, _json(record.start), _json(record.stop), record.desired,
            record.state, record.stage, record.error[:2000], record.created_at, now,
            time.time_ns(), record.origin, record.processes, record.workers,
        )  # fmt: skip
        self._client.insert(
            qualified(self._database, DEPLOYMENTS.name),
            [row],
            column_names=DEPLOYMENTS.column_names,
            column_type_names=[t for _, t in DEPLOYMENTS.columns],
            settings={"async_insert": 0},
        )

    def get(self, name: str) -> Record | None:
        found = self._select(f"WHERE name = {literal(name)}")
        return found[0] if found else None

    def all(self) -> list[Record]:
        return self._select("")

    def note(self, record: Record, event: str, detail: str = "") -> None:
        """Append to the deployment's history."""
        self._client.insert(
            qualified(self._database, EVENTS.name),
            [(record.name, record.pipeline, int(time.time() * 1000), event, detail[:4000])],
            column_names=EVENTS.column_names,
            column_type_names=[t for _, t in EVENTS.columns],
            settings={"async_insert": 0},
        )

    def history(self, pipeline: str) -> list[Event]:
        result = self._client.query(
            f"SELECT name, at, event, detail FROM {qualified(self._database, EVENTS.name)} "
            f"WHERE pipeline = {literal(pipeline)} ORDER BY at, name"
        )
        return [
            Event(name, at.isoformat(), event, detail)
            for name, at, event, detail in result.result_rows
        ]

    def skips(self, name: str) -> dict[int, frozenset[int]]:
        """The offsets per partition an operator told the deployment to pass over (`cqrs skip`,
        kept in its history as `skip` events, `partition:offset`)."""
        result = self._client.query(
            f"SELECT detail FROM {qualified(self._database, EVENTS.name)} "
            f"WHERE name = {literal(name)} AND event = 'skip'"
        )
        found: dict[int, set[int]] = {}
        for (detail,) in result.result_rows:
            partition, _, offset = detail.partition(":")
            found.setdefault(int(partition), set()).add(int(offset))
        return {p: frozenset(offsets) for p, offsets in found.items()}

    def _select(self, where: str) -> list[Record]:
        result = self._client.query(
            "SELECT name, pipeline, version, spec, source, topic, start, stop, desired, state, "
            "stage, error, toUnixTimestamp64Milli(created_at), origin, processes, workers "
            f"FROM {qualified(self._database, DEPLOYMENTS.name)} FINAL {where} ORDER BY name"
        )
        return [
            Record(
                name=r[0],
                pipeline=r[1],
                version=r[2],
                spec=r[3],
                source=r[4],
                topic=r[5],
                start=_offsets(r[6]) or {},
                stop=_offsets(r[7]),
                desired=Desired(r[8]),
                state=State(r[9]),
                stage=Stage(r[10]),
                error=r[11],
                created_at=r[12],
                origin=Origin(r[13] or Origin.LOCAL),
                processes=max(1, r[14]),
                workers=max(1, r[15]),
            )
            for r in result.result_rows
        ]


def _json(offsets: dict[int, int] | None) -> str:
    return "" if offsets is None else msgspec.json.encode(offsets).decode()


def _offsets(text: str) -> dict[int, int] | None:
    if not text:
        return None
    return {int(k): v for k, v in msgspec.json.decode(text).items()}
