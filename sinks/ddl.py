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


def create_database(database: str) -> str:
    return f"CREATE DATABASE IF NOT EXISTS {ident(database)}"


def create_table(database: str, table: Table) -> str:
    cols = ",\n  ".join(f"{ident(n)} {check_type(t)}" for n, t in table.columns)
    engine = f"ReplacingMergeTree({ident(table.version)})" if table.version else "MergeTree"
    order = ", ".join(ident(c) for c in table.order_by) or "tuple()"
    sql = (
        f"CREATE TABLE IF NOT EXISTS {qualified(database, table.name)} (\n  {cols}\n)\n"
        f"ENGINE = {engine}\nORDER BY ({order})"
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


def create_view_if_missing(database: str, view: str, select: str) -> str:
    """A stable view; `select` comes from the projector, over a `qualified` table name."""
    return f"CREATE VIEW IF NOT EXISTS {qualified(database, view)} AS {select}"


#: what a reader may read of the `system` database: names, shapes and sizes, and the engine's
#: gauges (`metrics`: counts of threads and bytes of caches, which an operator watches), never
#: the text of other queries, users, grants, logs, server settings or named collections (the
#: query path's guard allows the same: deploy.sql_guard)
READER_SYSTEM_TABLES = (
    "one", "numbers", "numbers_mt", "zeros", "zeros_mt", "databases", "tables", "columns",
    "parts", "functions", "table_functions", "data_type_families", "time_zones", "metrics",
)  # fmt: skip


def reader_user(user: str, password: str, limits: dict[str, int | float]) -> list[str]:
    """With a ClickHouse server: the statements that make the read-only user the query path
    (and Grafana) should use. `readonly = 2` (no writes or DDL; settings may change, but the
    limits are constraints it cannot lift: CONST) and grants of SELECT only: no FILE, URL,
    REMOTE, S3 or other source grants, so no table function reaches outside; `CREATE TEMPORARY
    TABLE` for the harmless ones (numbers, values). Not run here (no server): see SECURITY.md."""
    name = ident(user)
    constraints = ", ".join(f"{_setting_name(k)} = {v} CONST" for k, v in limits.items())
    return [
        f"CREATE USER IF NOT EXISTS {name} IDENTIFIED WITH sha256_password BY {literal(password)}",
        f"ALTER USER {name} SETTINGS readonly = 2, allow_introspection_functions = 0 CONST, "
        f"{constraints}",
        f"GRANT SELECT ON *.* TO {name}",
        f"REVOKE SELECT ON system.* FROM {name}",
        *(f"GRANT SELECT ON system.{ident(t)} TO {name}" for t in READER_SYSTEM_TABLES),
        f"GRANT CREATE TEMPORARY TABLE ON *.* TO {name}",
    ]
