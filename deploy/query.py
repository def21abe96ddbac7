"""Read-only queries, wherever the store is: through the running runtime when it holds the
embedded store, directly otherwise.

Every statement runs with ClickHouse's `readonly` setting, so nothing sent this way can write,
alter or drop, whatever the SQL says.
"""

from __future__ import annotations

import datetime as dt
import decimal
import time
import uuid
from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from commands.errors import StoreError
from deploy.runtime_file import find_runtime
from deploy.settings import Settings
from sinks.store import StoreBusy, open_client

#: readonly=2 refuses every write and DDL but still lets the client pass its own query settings.
READONLY = {"readonly": 2}


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[list[Any]]

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "types": self.types,
            "rows": [[_jsonable(v) for v in row] for row in self.rows],
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> QueryResult:
        return cls(doc["columns"], doc["types"], doc["rows"])


def run_readonly(client: Client, sql: str) -> QueryResult:
    try:
        result = client.query(sql, settings=READONLY)
    except ClickHouseError as exc:
        raise StoreError(str(exc).strip()) from None
    return QueryResult(
        columns=list(result.column_names),
        types=[t.name for t in result.column_types],
        rows=[list(r) for r in result.result_rows],
    )


def query(settings: Settings, sql: str, wait_s: float = 30.0) -> QueryResult:
    """Run `sql` read-only: via the runtime of this data dir if one runs (it holds the embedded
    store), else by opening the store in this process. A runtime that is starting holds the
    store before it says where it serves, so a busy store is retried until it does."""
    if not settings.embedded:
        return run_readonly(open_client(settings.clickhouse_dsn), sql)
    from deploy.client import RuntimeClient

    deadline = time.monotonic() + wait_s
    while True:
        runtime = find_runtime(settings.data_dir)
        if runtime is not None:
            return RuntimeClient(runtime.url, settings.token).query(sql)
        try:
            client = open_client(settings.clickhouse_dsn)
        except StoreBusy:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
            continue
        return run_readonly(client, sql)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value
