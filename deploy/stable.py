"""The stable query layer: one view per projection name, in the `query` database, reading the
pipeline's active deployment.

Which deployment is active is one row in a pointer table. Every view of a pipeline is a union of
one branch per live deployment, each branch guarded by the same scalar subquery on the pointer:
ClickHouse evaluates an identical scalar subquery once per query, so a query that reads several
views of a pipeline sees them all at the same deployment, and switching the pointer (one
insert) moves every view at once. The inactive branches are guarded out before any of their
rows is read. Columns a deployment lacks are NULL in its branch, so versions that add columns
(v2's `revenue_usd`) share a view with the ones that do not.
"""

from __future__ import annotations

import time

from clickhouse_connect.driver.client import Client

from core.schema import Table
from dataflows.spec import Pipeline
from sinks.ddl import (
    create_database,
    create_or_replace_view,
    create_table,
    drop_view,
    ident,
    literal,
    qualified,
)

POINTER = Table(
    name="active",
    columns=(
        ("pipeline", "String"),
        ("deployment", "String"),
        ("revision", "UInt64"),
        ("at", "DateTime64(3, 'UTC')"),
    ),
    order_by=("pipeline",),
    version="revision",
)
DEPLOYMENT_COLUMN = "_deployment"


class StableLayer:
    def __init__(
        self, client: Client, control_db: str, views_db: str, cluster: str | None = None
    ) -> None:
        self._client = client
        self._control = control_db
        self._views = views_db
        #: on a cluster, the pointer is replicated to every host and the views are made on
        #: each, so a query on any host reads the same deployment (once the switch's insert
        #: has reached that host's replica: a second or so, not atomically across hosts)
        self._cluster = cluster

    def create_tables(self) -> None:
        self._client.command(create_database(self._control, self._cluster))
        self._client.command(create_table(self._control, POINTER, self._cluster))
        self._client.command(create_database(self._views, self._cluster))

    def pointer_sql(self, pipeline: str) -> str:
        return (
            f"(SELECT argMax(deployment, revision) FROM {qualified(self._control, POINTER.name)} "
            f"WHERE pipeline = {literal(pipeline)})"
        )

    def active(self, pipeline: str) -> str | None:
        found = self._client.command(f"SELECT {self.pointer_sql(pipeline)}")
        return str(found) or None

    def switch(self, pipeline: str, deployment: str) -> None:
        """The one atomic step: every view of the pipeline now reads `deployment`."""
        self._client.insert(
            qualified(self._control, POINTER.name),
            [(pipeline, deployment, time.time_ns(), int(time.time() * 1000))],
            column_names=POINTER.column_names,
            column_type_names=[t for _, t in POINTER.columns],
            settings={"async_insert": 0},
        )

    def rebuild(
        self,
        pipeline: str,
        branches: list[tuple[str, Pipeline]],
        only: set[str] | None = None,
        retired: set[str] = frozenset(),
    ) -> None:
        """(Re)create the pipeline's views over `branches` (deployment name, pipeline): one per
        projection some branch has (or, with `only`, per projection named there). Views named
        in `retired` that no branch has are dropped."""
        projections: dict[str, list[tuple[str, str]]] = {}
        for deployment, spec in branches:
            for projection in spec.projections:
                if only is not None and projection.name not in only:
                    continue
                for table in projection.output.tables:
                    select = projection.projector.view(qualified(deployment, table.name))
                    projections.setdefault(projection.name, []).append((deployment, select))
        pointer = self.pointer_sql(pipeline)
        for name, selects in projections.items():
            self._client.command(
                create_or_replace_view(
                    self._views, name, self._union(pointer, selects), self._cluster
                )
            )
        for name in set(retired) - projections.keys():
            self._client.command(drop_view(self._views, name, self._cluster))

    def _union(self, pointer: str, selects: list[tuple[str, str]]) -> str:
        described: list[tuple[str, list[tuple[str, str]]]] = []
        for deployment, select in selects:
            columns = self._client.query(f"DESCRIBE ({select})").result_rows
            described.append((deployment, [(c[0], c[1]) for c in columns]))
        order: list[str] = []
        types: dict[str, str] = {}
        for _, columns in described:
            for name, type_ in columns:
                if name not in types:
                    order.append(name)
                    types[name] = type_
        branches = []
        for (deployment, columns), (_, select) in zip(described, selects, strict=True):
            have = {name for name, _ in columns}
            fields = ", ".join(
                ident(name)
                if name in have
                else f"CAST(NULL AS {_nullable(types[name])}) AS {ident(name)}"
                for name in order
            )
            branches.append(
                f"SELECT {fields}, {literal(deployment)} AS {DEPLOYMENT_COLUMN} FROM ({select}) "
                f"WHERE {pointer} = {literal(deployment)}"
            )
        return " UNION ALL ".join(branches)


def _nullable(type_: str) -> str:
    base = (
        type_.removeprefix("LowCardinality(").removesuffix(")")
        if type_.startswith("LowCardinality(")
        else type_
    )
    return base if base.startswith("Nullable(") else f"Nullable({base})"
