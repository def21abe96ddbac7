"""A ClickHouse client that serialises each insert as clickhouse-connect would send it to a
server (Native blocks, lz4) and drops the bytes: the pipeline process as it runs beside a
ClickHouse server, without the embedded engine in it (`python -m bench.memory --null-store`).
DDL and the checks `Deployment.prepare` makes get answers that let a run start: nothing is
stored, so nothing can be read back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clickhouse_connect.datatypes.registry import get_from_name
from clickhouse_connect.driver.insert import InsertContext
from clickhouse_connect.driver.transform import NativeTransform

#: what `command` answers: a count of tables (none holding progress) or a setting's value (a
#: deduplication window wide enough)
_ANSWER = "1000000"


class _NoRows:
    result_rows: list[Any] = []


class NullClient:
    def __init__(self) -> None:
        self.bytes_sent = 0

    def command(self, cmd: str, *args: Any, **kw: Any) -> str:
        return _ANSWER

    def query(self, query: str, *args: Any, **kw: Any) -> _NoRows:
        return _NoRows()

    def insert(
        self,
        table: str,
        data: Sequence[Sequence[Any]],
        column_names: Sequence[str],
        column_type_names: Sequence[str],
        column_oriented: bool = False,
        settings: dict[str, Any] | None = None,
        **kw: Any,
    ) -> None:
        context = InsertContext(
            table,
            column_names,
            [get_from_name(name) for name in column_type_names],
            data,
            column_oriented=column_oriented,
            settings=settings,
            compression="lz4",
        )
        for chunk in NativeTransform.build_insert(context):
            self.bytes_sent += len(chunk)
        if context.insert_exception is not None:
            raise context.insert_exception

    def close(self) -> None:
        pass


def null_client(dsn: str) -> NullClient:
    return NullClient()
