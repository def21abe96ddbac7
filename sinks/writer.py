"""One table's inserts through one reused insert context of clickhouse-connect.

A context refers to itself (it keeps a bound method of its own), so one made per insert, as
`client.insert(table, data, ...)` does, is garbage only the cycle collector can free, and it
holds every column of its insert until then. The runtime runs that collector rarely
(deploy/memory.py): with a context per insert, 1,000,000 commands grew the pipeline to over
700 MB. A context reused for the table's life is never garbage; and after each insert it is
given an empty block in place of the data, which it would otherwise keep until the next.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.insert import InsertContext

from core.schema import Table
from sinks.ddl import qualified

_EMPTY = ((),)


class TableWriter:
    def __init__(
        self, client: Client, database: str, table: Table, column_oriented: bool = False
    ) -> None:
        self._client = client
        self._table = table
        self._target = qualified(database, table.name)
        self._column_oriented = column_oriented
        self._context: InsertContext | None = None

    def insert(self, data: Sequence[Sequence[Any]], settings: dict[str, Any]) -> None:
        """`data`: rows, or columns if the writer is column oriented, in the table's column
        order."""
        if self._context is None:
            self._context = self._client.create_insert_context(
                self._target,
                column_names=self._table.column_names,
                column_type_names=[kind for _, kind in self._table.columns],
                column_oriented=self._column_oriented,
            )
        self._context.settings = settings
        try:
            self._client.insert(self._target, data, context=self._context)
        except BaseException:
            self._context = None  # in whatever state the failure left it: not reused
            raise
        # no rows (or no columns): the context stays empty, and lets the insert's data go
        self._context.data = _EMPTY
