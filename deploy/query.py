"""Read-only queries. Wherever the store is (read by the runtime that holds the embedded store,
or by the calling process: `deploy.bootstrap.service` says which), they run the same code: a
`Reader`.

A reader is a session on the store that is read-only by construction: its limits and then
`readonly = 1` are set on the session when it opens (after which ClickHouse refuses any change
of a setting, from a SETTINGS clause or a SET), and it runs a statement only once
`deploy.sql_guard` has checked it with ClickHouse's own parser.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.exceptions import ClickHouseError

from core.errors import StoreError
from deploy.model import QueryResult
from deploy.sql_guard import READ_ONLY, QueryRefused, SqlGuard
from sinks import ddl
from sinks.store import open_client

MAX_RESULT_ROWS = 100_000
MAX_RESULT_BYTES = 64 * 2**20
MAX_ROWS_TO_READ = 1_000_000_000
MAX_BYTES_TO_READ = 100 * 2**30
MAX_MEMORY = 2 * 2**30


_CAPPED = (
    f"capped: the result is over {MAX_RESULT_ROWS:,} rows or {MAX_RESULT_BYTES // 2**20} MiB, "
    f"the query path's cap; add a LIMIT or aggregate"
)


def reader_settings(timeout_s: float) -> dict[str, Any]:
    """The session settings of a reader, in the order they are set: `readonly` last, since
    it forbids changing any setting after it."""
    return {
        "max_execution_time": timeout_s,
        "timeout_overflow_mode": "throw",
        "max_rows_to_read": MAX_ROWS_TO_READ,
        "max_bytes_to_read": MAX_BYTES_TO_READ,
        "read_overflow_mode": "throw",
        "max_result_rows": MAX_RESULT_ROWS,
        "max_result_bytes": MAX_RESULT_BYTES,
        "result_overflow_mode": "throw",
        "max_memory_usage": MAX_MEMORY,
        "allow_introspection_functions": 0,
        "readonly": 1,
    }


class Reader:
    """A read-only session on the store: the one way the query path runs SQL."""

    def __init__(self, dsn: str, timeout_s: float, wait_s: float = 0.0) -> None:
        self.timeout_s = timeout_s
        self._client = open_client(dsn, wait_s=wait_s, settings=reader_settings(timeout_s))
        if str(self._client.command("SELECT getSetting('readonly')")).strip() != "1":
            raise StoreError(f"the query session on {dsn} is not read-only; refusing to use it")
        self._guard = SqlGuard(self._client)
        self._lock = threading.Lock()

    def query(self, sql: str) -> QueryResult:
        with self._lock:
            try:
                statement = self._guard.check(sql)
                try:
                    result = self._client.query(statement)
                except ClickHouseError as exc:
                    raise self._limit(exc) from None
                columns = list(result.column_names)
                types = [t.name for t in result.column_types]
                if not columns:
                    columns, types = self._shape(statement)
            except BaseException:
                self._resync()
                raise
        rows = [list(r) for r in result.result_rows]
        if _size(rows) > MAX_RESULT_BYTES:  # ClickHouse does not cut a single huge block
            raise QueryRefused(_CAPPED)
        return QueryResult(columns=columns, types=types, rows=rows)

    def _shape(self, statement: str) -> tuple[list[str], list[str]]:
        """The columns of a result with no rows: the embedded engine sends none with an empty
        result, and a table without its header reads as an error. SHOW and EXPLAIN cannot be
        described; their empty answer keeps no columns."""
        try:
            described = self._client.query(f"DESCRIBE ({statement})").result_rows
        except ClickHouseError:
            self._resync()
            return [], []
        return [str(row[0]) for row in described], [str(row[1]) for row in described]

    def _resync(self) -> None:
        """After a failed statement, the embedded session can hand the next one what was left
        of the failed result (clickhouse-connect 1.12 over chDB 4.4 does, after a result
        limit): read until the session answers a probe with the probe's own answer."""
        for _ in range(5):
            try:
                if self._client.query("SELECT 42").result_rows == [(42,)]:
                    return
            except ClickHouseError:
                continue
        raise StoreError("the query session lost step with the store; restart the runtime")

    def _limit(self, exc: ClickHouseError) -> StoreError:
        """What a limit of the session stopped, said as the query path's own rule."""
        code = getattr(exc, "code", None)
        message = str(exc).strip()
        if code == 396:  # TOO_MANY_ROWS_OR_BYTES: the result cap
            return QueryRefused(_CAPPED)
        if code in (158, 307):  # TOO_MANY_ROWS, TOO_MANY_BYTES: what a query may read
            return QueryRefused(
                f"refused: the query would read more than {MAX_ROWS_TO_READ:,} rows or "
                f"{MAX_BYTES_TO_READ // 2**30} GiB, the query path's limit; narrow it"
            )
        if code in (159, 160):  # TIMEOUT_EXCEEDED, TOO_SLOW
            return QueryRefused(
                f"stopped: the query ran past {self.timeout_s:g} s, the query path's limit"
            )
        if code == 241:  # MEMORY_LIMIT_EXCEEDED
            return QueryRefused(
                f"stopped: the query needed more than {MAX_MEMORY // 2**30} GiB of memory, the "
                f"query path's limit"
            )
        if code == 164:  # READONLY
            return QueryRefused(f"refused: {message}; {READ_ONLY}")
        return StoreError(message)


def _size(rows: list[list[Any]]) -> int:
    """Roughly the bytes of a result: its strings and byte strings, 8 for anything else."""
    total = 0
    for row in rows:
        for value in row:
            total += len(value) if isinstance(value, str | bytes) else 8
            if total > MAX_RESULT_BYTES:
                return total
    return total


def reader_user_sql(user: str = "cqrs_reader", password: str = "cqrs_reader") -> str:
    """The init script docker-compose.yml gives the ClickHouse server (deploy/clickhouse/)."""
    limits = {k: v for k, v in reader_settings(30.0).items() if isinstance(v, int | float)}
    limits.pop("readonly")
    limits.pop("allow_introspection_functions")
    statements = ddl.reader_user(user, password, limits)
    return (
        "-- The read-only ClickHouse user of the query path and Grafana: written by\n"
        "-- `python -m deploy.query`; docker-compose.yml runs it when the server first starts.\n"
        + "".join(f"{s};\n" for s in statements)
    )


if __name__ == "__main__":
    (Path(__file__).parent / "clickhouse" / "reader.sql").write_text(reader_user_sql())
