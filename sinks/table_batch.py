"""One table's buffered rows for the sink partitions a worker holds, written together.

Rows are inserted when `max_rows` are waiting, when the oldest has waited `max_delay`, and at
any of the partitions' snapshots: one insert of rows whose deduplication token names every
partition's offset range (a retry sends the same rows with the same token, so an insert that
succeeded although the client saw an error is not applied twice), then one progress insert
for all those partitions. A partition's progress, and its snapshot, move only after its rows
were written. One pair of inserts per flush for a worker's partitions, not a pair per
partition: each insert is synchronous on the worker thread (and a new part in ClickHouse), so
their count, more than their size, is what the latency pays (BENCHMARKS.md, scenario 3).

The buffer is kept by columns, each batch's rows appended to them as it comes: the insert goes
by columns (cheaper than clickhouse-connect's own pivot, `bench.insert_codec`), and a buffer of
rows transposed at the flush held the rows and their columns at once beside the serialised
block (50,000 rows of orders: 9.6 MB of row tuples, 5.7 MB of columns; BENCHMARKS.md "Peak
RSS"); a batch's row tuples now die with the batch.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from clickhouse_connect.driver.client import Client

from core.envelope import LogRecord, Reason, Rejected
from core.schema import Table
from sinks.ddl import qualified
from sinks.dlq import DlqWriter
from sinks.output import FlushObserver, RetryObserver, WrittenObserver
from sinks.progress import progress_writer, record_progress
from sinks.retry import Backoff, is_content_error, is_fatal_error
from sinks.writer import TableWriter

log = logging.getLogger(__name__)

Row = tuple[Any, ...]
Columns = list[list[Any]]
# per batch of one partition: (first offset, last offset, newest log time in epoch ms, rows in
# the table's column order)
SinkItem = tuple[int, int, int, list[Row]]


@dataclass(frozen=True)
class Limits:
    max_rows: int
    max_delay_s: float


@dataclass(frozen=True)
class Observers:
    on_flush: FlushObserver | None = None
    on_retry: RetryObserver | None = None
    on_written: WrittenObserver | None = None


class TableBatch:
    """`written`: per partition, the highest offset whose rows are written (from its resume
    state on, `attach`)."""

    def __init__(
        self,
        database: str,
        table: Table,
        client: Client,
        limits: Limits,
        dlq: Callable[[], DlqWriter],
        observers: Observers,
    ) -> None:
        self._table = table
        self._client = client
        self._limits = limits
        self._new_dlq = dlq
        self._observers = observers
        self._target = qualified(database, table.name)
        self._token_prefix = f"{database}.{table.name}"
        self._names = table.column_names
        # by columns: cheaper than clickhouse-connect's own pivot (bench.insert_codec)
        self._writer = TableWriter(client, database, table, column_oriented=True)
        self._progress = progress_writer(client, database)
        self.written: dict[int, int] = {}
        self._columns: Columns = [[] for _ in self._names]
        self._count = 0  # rows buffered
        # per buffered partition: [first offset, last offset]
        self._ranges: dict[int, list[int]] = {}
        # (index of its first row, partition), one per run of rows: a refused row's partition
        self._runs: list[tuple[int, int]] = []
        self._since = 0.0  # when the oldest buffered batch arrived
        self._log_times: list[int] = []  # newest log time of each buffered batch with rows
        self._dlq: DlqWriter | None = None
        self._parts = 0  # sink partitions attached and not closed
        self.released = False

    def add(self, partition: int, values: list[SinkItem]) -> None:
        now = time.monotonic()
        if not self._ranges:
            self._since = now
        span = self._ranges.get(partition)
        for first, last, log_time, rows in values:
            if span is None:
                span = self._ranges[partition] = [first, last]
            span[1] = max(span[1], last)
            if rows:
                if not self._runs or self._runs[-1][1] != partition:
                    self._runs.append((self._count, partition))
                transposed = list(zip(*rows, strict=True))
                if len(transposed) != len(self._columns):  # checked before any column grows
                    raise ValueError(
                        f"{self._target} has {len(self._columns)} columns, a row of "
                        f"partition {partition} has {len(transposed)}"
                    )
                for column, values in zip(self._columns, transposed, strict=True):
                    column.extend(values)
                self._count += len(rows)
                self._log_times.append(log_time)
        limits = self._limits
        if self._count >= limits.max_rows or now - self._since >= limits.max_delay_s:
            self.flush()

    def flush(self) -> None:
        if not self._ranges:
            return
        started = time.perf_counter()
        ranges = ",".join(f"{p}:{a}-{b}" for p, (a, b) in sorted(self._ranges.items()))
        seen = self._observers
        if self._count:
            self._insert(self._columns, 0, f"{self._token_prefix}:{ranges}")
            if seen.on_flush is not None:
                seen.on_flush(self._table.name, self._count, time.perf_counter() - started)
            if seen.on_written is not None:
                seen.on_written(self._log_times)
        for partition, (_, last) in self._ranges.items():
            self.written[partition] = max(self.written.get(partition, -1), last)
        offsets = {p: self.written[p] for p in self._ranges}
        self._retrying(lambda: record_progress(self._progress, self._table.name, offsets))
        self._columns = [[] for _ in self._names]
        self._count = 0
        self._ranges = {}
        self._runs = []
        self._log_times = []

    def attach(self, partition: int, resumed: int | None) -> None:
        """A sink partition joins; the highest of what the batch wrote for it and its resume
        state counts (Bytewax may build a part before the snapshot it resumes from arrives,
        then build it again from that snapshot)."""
        self._parts += 1
        done = -1 if resumed is None else resumed
        self.written[partition] = max(self.written.get(partition, -1), done)

    def detach(self) -> None:
        self._parts -= 1
        if self._parts <= 0:
            self.release()

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        self._client.close()
        if self._dlq is not None:
            self._dlq.close()
            self._dlq = None

    def _insert(self, columns: Columns, at: int, token: str) -> None:
        """Insert, retrying infrastructure errors; split the batch on a content error until
        the rows ClickHouse refuses are found, send those to the DLQ, and write the rest.
        `at`: the index of the columns' first row in the buffer."""
        # through a Distributed table (a cluster), the shards' inserts happen before this
        # returns, each with the token, never from a queue after a crash
        settings = {
            "async_insert": 0,
            "insert_distributed_sync": 1,
            "insert_deduplication_token": token,
        }

        def insert() -> None:
            self._writer.insert(columns, settings)

        try:
            self._retrying(insert)
        except Exception as exc:
            if not is_content_error(exc):
                raise
            count = len(columns[0])
            if count == 1:
                self._reject(tuple(column[0] for column in columns), at, exc)
                return
            middle = count // 2
            self._insert([column[:middle] for column in columns], at, f"{token}/a")
            self._insert([column[middle:] for column in columns], at + middle, f"{token}/b")

    def _retrying(self, action: Callable[[], None]) -> None:
        backoff = Backoff()
        while True:
            try:
                action()
                return
            except Exception as exc:
                if is_content_error(exc) or is_fatal_error(exc):
                    raise
                if self._observers.on_retry is not None:
                    self._observers.on_retry(self._table.name, exc)
                seconds = backoff.pause()
                log.warning(
                    "insert into %s failed (%s); retried in %.1fs", self._target, exc, seconds
                )

    def _reject(self, row: Row, at: int, exc: BaseException) -> None:
        """A row ClickHouse will never take: to the DLQ, as JSON of its columns."""
        partition = self._runs[bisect.bisect_right(self._runs, (at, 1 << 30)) - 1][1]
        last = self._ranges[partition][1]
        named = dict(zip(self._names, row, strict=True))
        version = named.get(self._table.version or "", last)
        record = LogRecord(
            partition=partition,
            offset=version if isinstance(version, int) else last,
            timestamp=int(time.time() * 1000),
            key=self._table.name.encode(),
            value=msgspec.json.encode(named, enc_hook=str),
        )
        rejected = Rejected(
            record=record,
            step=f"{self._table.name}/sink",
            reason=Reason.UNWRITABLE_ROW,
            detail=str(exc).strip(),
        )
        if self._dlq is None:
            self._dlq = self._new_dlq()
        self._dlq.write([rejected])
