"""DDL in one place: identifiers are checked and quoted here, and nothing else builds SQL from
names. A projection's table is described by `core.schema.Table`; this module turns it into
statements."""

from __future__ import annotations

import re

from core.errors import StoreError
from core.schema import Table, is_ident

# ClickHouse type expressions as projections declare them: names, nesting, numbers, quoted
# enum labels. Anything else (a `;`, a comment) is refused, so a spec cannot inject SQL.
_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\((?:[A-Za-z0-9_ ,'=()-])*\))?")


def ident(name: str) -> str:
    """Quote an identifier after checking it is a plain name."""
    if not is_ident(name):
        raise StoreError(
            f"{name!r} is not a usable ClickHouse name: use letters, digits and '_', "
            f"starting with a letter or '_'"
        )
    return f"`{name}`"


def qualified(database: str, table: str) -> str:
    return f"{ident(database)}.{ident(table)}"


def check_type(type_: str) -> str:
    if not _TYPE.fullmatch(type_):
        raise StoreError(f"{type_!r} is not a ClickHouse column type this runtime accepts")
    return type_


def literal(value: str) -> str:
    """A string literal, escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


#: Keeper paths of replicated tables. `{uuid}` is the table's, which an `ON CLUSTER` query on an
#: Atomic database gives every host alike, so a table dropped and made again under the same name
#: (a replay) never meets its predecessor's replicas; `{shard}` and `{replica}` are the hosts'
#: macros (the Altinity operator sets them; `{replica}` must be unique in the whole cluster).
#: Sharded tables replicate within a shard; whole ones (registry, pointer, progress: small, and
#: read by every host) on every host of the cluster.
SHARDED_PATH = "/clickhouse/tables/{uuid}/{shard}"
WHOLE_PATH = "/clickhouse/tables/{uuid}/whole"
#: a sharded projection's table on each shard; the projection's own name is the Distributed
#: table over them, so inserts, the stable views and `cqrs query` use one name on any target
LOCAL_SUFFIX = "_local"


def on_cluster(cluster: str | None) -> str:
    """The `ON CLUSTER` clause that runs a DDL statement on every host of `cluster`."""
    return f" ON CLUSTER {ident(cluster)}" if cluster else ""


def create_database(database: str, cluster: str | None = None) -> str:
    """On a cluster the engine is named: `{uuid}` in replicated tables' paths needs Atomic,
    whatever a server's `default_database_engine` says."""
    engine = " ENGINE = Atomic" if cluster else ""
    return f"CREATE DATABASE IF NOT EXISTS {ident(database)}{on_cluster(cluster)}{engine}"


def drop_database(database: str, cluster: str | None = None) -> str:
    """SYNC: an Atomic database keeps a dropped table (and what the engine holds for it, and a
    replicated table's replica in Keeper) for eight minutes otherwise."""
    return f"DROP DATABASE IF EXISTS {ident(database)}{on_cluster(cluster)} SYNC"


def create_table(
    database: str, table: Table, cluster: str | None = None, sharded: bool = False
) -> str:
    """A (Replacing)MergeTree; with a cluster, its Replicated form on every host, replicated
    within each shard when `sharded` (see `create_distributed`), else across all hosts."""
    cols = ",\n  ".join(f"{ident(n)} {check_type(t)}" for n, t in table.columns)
    family = "ReplacingMergeTree" if table.version else "MergeTree"
    args = [ident(table.version)] if table.version else []
    if cluster:
        family = f"Replicated{family}"
        args = [literal(SHARDED_PATH if sharded else WHOLE_PATH), literal("{replica}"), *args]
    engine = f"{family}({', '.join(args)})" if args else family
    order = ", ".join(ident(c) for c in table.order_by) or "tuple()"
    sql = (
        f"CREATE TABLE IF NOT EXISTS {qualified(database, table.name)}{on_cluster(cluster)} "
        f"(\n  {cols}\n)\nENGINE = {engine}\nORDER BY ({order})"
    )
    if table.settings:
        pairs = ", ".join(
            f"{_setting_name(k)} = {_setting_value(v)}" for k, v in table.settings.items()
        )
        sql += f"\nSETTINGS {pairs}"
    return sql


def _setting_name(name: str) -> str:
    if not is_ident(name):
        raise StoreError(f"{name!r} is not a ClickHouse setting name")
    return name


def _setting_value(value: int | str) -> str:
    return str(value) if isinstance(value, int) else literal(value)


def create_distributed(
    database: str, name: str, local: str, cluster: str, shard_by: tuple[str, ...]
) -> str:
    """The table every shard's `local` table is read and written through. Rows are sharded by
    a hash of `shard_by` (the ORDER BY key), so the versions of one key meet on one shard and
    `FINAL` there replaces them as on one server."""
    key = f"cityHash64({', '.join(ident(c) for c in shard_by)})" if shard_by else "rand()"
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified(database, name)}{on_cluster(cluster)} "
        f"AS {qualified(database, local)}\nENGINE = Distributed({literal(cluster)}, "
        f"{literal(database)}, {literal(local)}, {key})"
    )


def create_or_replace_view(
    database: str, view: str, select: str, cluster: str | None = None
) -> str:
    """A stable view (on every host of a cluster); `select` is the stable layer's own."""
    return f"CREATE OR REPLACE VIEW {qualified(database, view)}{on_cluster(cluster)} AS {select}"


def drop_view(database: str, view: str, cluster: str | None = None) -> str:
    return f"DROP VIEW IF EXISTS {qualified(database, view)}{on_cluster(cluster)}"


#: what a reader may read of the `system` database: names, shapes and sizes, and the engine's
#: gauges (`metrics`: counts of threads and bytes of caches, which an operator watches), never
#: the text of other queries, users, grants, logs, server settings or named collections (the
#: query path's guard allows the same: deploy.sql_guard)
READER_SYSTEM_TABLES = (
    "one", "numbers", "numbers_mt", "zeros", "zeros_mt", "databases", "tables", "columns",
    "parts", "functions", "table_functions", "data_type_families", "time_zones", "metrics",
)  # fmt: skip


def reader_user(
    user: str, password: str, limits: dict[str, int | float], cluster: str | None = None
) -> list[str]:
    """With a ClickHouse server: the statements that make the read-only user the query path
    (and Grafana) should use, on every host of `cluster` if one is given. `readonly = 2` (no
    writes or DDL; settings may change, but the limits are constraints it cannot lift: CONST)
    and grants of SELECT only: no FILE, URL, REMOTE, S3 or other source grants, so no table
    function reaches outside; `CREATE TEMPORARY TABLE` for the harmless ones (numbers, values).
    Not run here (no server): see SECURITY.md."""
    name = ident(user)
    on = on_cluster(cluster)
    constraints = ", ".join(f"{_setting_name(k)} = {v} CONST" for k, v in limits.items())
    return [
        f"CREATE USER IF NOT EXISTS {name}{on} IDENTIFIED WITH sha256_password BY "
        f"{literal(password)}",
        f"ALTER USER {name}{on} SETTINGS readonly = 2, allow_introspection_functions = 0 CONST, "
        f"{constraints}",
        f"GRANT{on} SELECT ON *.* TO {name}",
        f"REVOKE{on} SELECT ON system.* FROM {name}",
        *(f"GRANT{on} SELECT ON system.{ident(t)} TO {name}" for t in READER_SYSTEM_TABLES),
        f"GRANT{on} CREATE TEMPORARY TABLE ON *.* TO {name}",
    ]
