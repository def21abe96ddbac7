"""The ClickHouse projection sink: batched, synchronous inserts, one sink partition per log
partition.

Rows are buffered and inserted when `max_rows` are waiting, when the oldest has waited
`max_delay`, and at every epoch's snapshot. Bytewax snapshots a sink partition only after its
epoch's items were written, so flushing at the snapshot means a recovery snapshot never covers
a row that is still only in memory; flushing on `max_delay` keeps rows visible quickly even
though epochs (and so snapshots) are seconds apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from clickhouse_connect.driver.client import Client

from commands.log import part_key
from sinks import ddl
from sinks.ddl import Table, qualified
from sinks.store import open_client

#: Inserts remembered per table for token deduplication: a retried batch, or one replayed with
#: the same offset range, within this many inserts is dropped by ClickHouse.
DEDUP_WINDOW = 10_000

Row = tuple[Any, ...]
# per batch of one partition: (first offset, last offset, rows in the table's column order)
SinkItem = tuple[int, int, list[Row]]
FlushObserver = Callable[[str, int, float], None]  # (table, rows, seconds)


def create_projection_table(client: Client, database: str, table: Table) -> None:
    """Create the table with the settings this sink's idempotent inserts rely on."""
    settings = {"non_replicated_deduplication_window": DEDUP_WINDOW, **table.settings}
    client.command(ddl.create_table(database, replace(table, settings=settings)))


class ProjectionSink(FixedPartitionedSink[SinkItem, int]):
    """Writes one projection table; resume state per partition is the highest offset written."""

    def __init__(
        self,
        database: str,
        table: Table,
        dsn: str,
        partitions: Sequence[int],
        max_rows: int = 50_000,
        max_delay_s: float = 0.25,
        on_flush: FlushObserver | None = None,
    ) -> None:
        self._max_delay_s = max_delay_s
        self._database = database
        self._table = table
        self._dsn = dsn
        self._keys = [part_key(p) for p in sorted(partitions)]
        self._index = {key: i for i, key in enumerate(self._keys)}
        self._max_rows = max_rows
        self._on_flush = on_flush

    def list_parts(self) -> list[str]:
        return list(self._keys)

    def part_fn(self, item_key: str) -> int:
        return self._index[item_key]

    def build_part(
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> _ProjectionPartition:
        return _ProjectionPartition(
            client=open_client(self._dsn),
            database=self._database,
            table=self._table,
            partition=int(for_part),
            written=resume_state,
            max_rows=self._max_rows,
            max_delay_s=self._max_delay_s,
            on_flush=self._on_flush,
        )


class _ProjectionPartition(StatefulSinkPartition[SinkItem, int]):
    def __init__(
        self,
        client: Client,
        database: str,
        table: Table,
        partition: int,
        written: int | None,
        max_rows: int,
        max_delay_s: float,
        on_flush: FlushObserver | None,
    ) -> None:
        self._max_delay_s = max_delay_s
        self._since = 0.0  # when the oldest buffered batch arrived
        self._client = client
        self._target = qualified(database, table.name)
        self._token_prefix = f"{database}.{table.name}:{partition}"
        self._table = table
        self._names = table.column_names
        self._types = [t for _, t in table.columns]
        self._max_rows = max_rows
        self._on_flush = on_flush
        self._written = -1 if written is None else written
        self._rows: list[Row] = []
        self._first = -1
        self._last = -1

    def write_batch(self, values: list[SinkItem]) -> None:
        now = time.monotonic()
        for first, last, rows in values:
            if self._first < 0:
                self._first = first
                self._since = now
            self._last = max(self._last, last)
            self._rows.extend(rows)
        if len(self._rows) >= self._max_rows or now - self._since >= self._max_delay_s:
            self._flush()

    def snapshot(self) -> int:
        self._flush()
        return self._written

    def close(self) -> None:
        self._flush()
        self._client.close()

    def _flush(self) -> None:
        if not self._rows:
            # Nothing to insert, but the batches up to `_last` are done with.
            self._written = max(self._written, self._last)
            self._first = self._last = -1
            return
        started = time.perf_counter()
        self._client.insert(
            self._target,
            self._rows,
            column_names=self._names,
            column_type_names=self._types,
            settings={
                "async_insert": 0,
                # Same input range, same token: a retried or replayed batch is not inserted twice.
                "insert_deduplication_token": f"{self._token_prefix}:{self._first}-{self._last}",
            },
        )
        if self._on_flush is not None:
            self._on_flush(self._table.name, len(self._rows), time.perf_counter() - started)
        self._written = max(self._written, self._last)
        self._rows = []
        self._first = -1
        self._last = -1
