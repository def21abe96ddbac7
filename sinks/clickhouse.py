"""The ClickHouse projection sink: batched, synchronous inserts, one sink partition per log
partition.

Rows are buffered and inserted when `max_rows` are waiting, when the oldest has waited
`max_delay`, and at every epoch's snapshot. Bytewax snapshots a sink partition only after its
epoch's items were written, so flushing at the snapshot means a recovery snapshot never covers
a row that is still only in memory; flushing on `max_delay` keeps rows visible quickly even
though epochs (and so snapshots) are seconds apart.

Each insert carries a deduplication token made of the deployment, table, partition and offset
range; a retry sends the same rows with the same token, so an insert that succeeded although
the client saw an error is not applied twice. After each insert the partition's progress is
recorded. While ClickHouse is failing, the insert is retried and `write_batch` does not return:
Bytewax stops pulling from the source, so memory stays at one buffer per partition.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Annotated, Any

import bytewax.operators as op
import msgspec
from bytewax.dataflow import Stream
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from clickhouse_connect.driver.client import Client

from commands.log import part_key
from core.envelope import LogRecord, Reason, Rejected
from core.errors import StoreError
from core.outputs import BatchOutput, Output, Projected
from core.schema import Table
from sinks import ddl
from sinks.ddl import qualified
from sinks.dlq import DlqWriter
from sinks.output import (
    ClientFactory,
    Declared,
    FlushObserver,
    OutputRefused,
    Results,
    RetryObserver,
    SinkContext,
    SinkOutput,
    WrittenObserver,
    register_sink,
)
from sinks.progress import record_progress
from sinks.retry import Backoff, is_content_error, is_fatal_error
from sinks.store import open_client

log = logging.getLogger(__name__)

#: Inserts remembered per table for token deduplication: a retried batch, or one replayed with
#: the same offset range, within this many inserts is dropped by ClickHouse.
DEDUP_WINDOW = 10_000
#: ...and for how long, on a replicated table (a server's default is an hour or a week by
#: version): a runtime down for a weekend still finds the tokens of what it may repeat
DEDUP_WINDOW_SECONDS = 7 * 24 * 3600

Row = tuple[Any, ...]
# per batch of one partition: (first offset, last offset, newest log time in epoch ms, rows in
# the table's column order)
SinkItem = tuple[int, int, int, list[Row]]


def create_projection_table(
    client: Client, database: str, table: Table, cluster: str | None = None
) -> None:
    """Create the table with the settings this sink's idempotent inserts rely on. On a
    cluster: a replicated table on every shard, and the projection's name for the Distributed
    table over them (inserts through it are synchronous: `_insert`)."""
    if cluster is None:
        settings = {"non_replicated_deduplication_window": DEDUP_WINDOW, **table.settings}
        client.command(ddl.create_table(database, replace(table, settings=settings)))
        return
    if table.name.endswith(ddl.LOCAL_SUFFIX):
        raise StoreError(
            f"{database}.{table.name}: on a ClickHouse cluster a projection's name cannot end "
            f"in {ddl.LOCAL_SUFFIX!r} (its shards' tables are named so); rename the projection"
        )
    settings = {
        "replicated_deduplication_window": DEDUP_WINDOW,
        "replicated_deduplication_window_seconds": DEDUP_WINDOW_SECONDS,
        **table.settings,
    }
    local = replace(table, name=table.name + ddl.LOCAL_SUFFIX, settings=settings)
    client.command(ddl.create_table(database, local, cluster, sharded=True))
    client.command(
        ddl.create_distributed(database, table.name, local.name, cluster, table.order_by)
    )


def check_dedup_window(client: Client, database: str, table: Table, needed: int) -> None:
    """Refuse a table whose deduplication window is smaller than the inserts a crash can
    repeat: a replayed batch beyond the window would be inserted twice. The window is the
    stored table's (the shard's, under a Distributed one); replicated tables deduplicate by
    default, with the server's `replicated_deduplication_window` unless the table sets one."""
    stored = client.query(
        f"SELECT name, engine, engine_full FROM system.tables "
        f"WHERE database = {ddl.literal(database)} AND name IN "
        f"({ddl.literal(table.name)}, {ddl.literal(table.name + ddl.LOCAL_SUFFIX)}) "
        f"AND engine LIKE '%MergeTree' ORDER BY name"
    ).result_rows
    name, engine, engine_full = stored[0] if stored else (table.name, "", "")
    setting = (
        "replicated_deduplication_window"
        if str(engine).startswith("Replicated")
        else "non_replicated_deduplication_window"
    )
    found = re.search(rf"\b{setting}\s*=\s*(\d+)", str(engine_full))
    if found:
        window = int(found.group(1))
    else:
        default = client.command(
            f"SELECT value FROM system.merge_tree_settings WHERE name = {ddl.literal(setting)}"
        )
        window = int(default) if str(default).isdigit() else 0
    if window < needed:
        raise StoreError(
            f"{database}.{name} remembers {window} inserts for deduplication, but a "
            f"restart may repeat up to {needed}; fix it with ALTER TABLE "
            f"{qualified(database, name)} MODIFY SETTING "
            f"{setting} = {max(needed, DEDUP_WINDOW)}"
        )


class SinkSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: rows buffered before an insert; an insert also happens at every epoch's snapshot
    max_rows: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 50_000
    #: the longest a row waits in the buffer (what bounds the latency to the query side)
    max_delay_ms: Annotated[int, msgspec.Meta(ge=10, le=60_000)] = 250


@register_sink
class TableOutput(SinkOutput):
    """A ClickHouse table (a ReplacingMergeTree), written in idempotent batches, with the
    progress of each log partition; read through the stable view. Set under `sink:`."""

    kind = "table"
    params = SinkSpec

    def __init__(self, table: Table, settings: SinkSpec) -> None:
        self.table = table
        self.settings = settings

    @classmethod
    def build(cls, declared: Declared) -> TableOutput:
        if declared.topic:
            raise OutputRefused(
                "topic", f"{declared.step_id!r} writes a table, not a topic; drop `topic`"
            )
        if declared.table is None:
            raise OutputRefused("steps", f"{declared.step_id!r} declares no table")
        return cls(replace(declared.table, name=declared.projection), declared.sink)

    @property
    def tables(self) -> tuple[Table, ...]:
        return (self.table,)

    def prepare(self, client: Client, ctx: SinkContext) -> None:
        create_projection_table(client, ctx.deployment, self.table, ctx.cluster)
        check_dedup_window(client, ctx.deployment, self.table, ctx.dedup_inserts)

    def sink(self, ctx: SinkContext) -> ProjectionSink:
        return ProjectionSink(
            ctx.deployment,
            self.table,
            ctx.clickhouse_dsn,
            ctx.partitions,
            dlq=lambda: DlqWriter(ctx.brokers, ctx.log_topic, ctx.deployment),
            max_rows=self.settings.max_rows,
            max_delay_s=self.settings.max_delay_ms / 1000,
            on_flush=ctx.on_flush,
            on_retry=ctx.on_retry,
            on_written=ctx.on_written,
            client_factory=ctx.client_factory,
        )

    def pick(self, produced: list[Output]) -> list[Row]:
        return [p.row for p in produced if isinstance(p, Projected)]

    def stream(self, results: Results) -> Stream[tuple[str, SinkItem]]:
        name = self.table.name

        def item(out: BatchOutput) -> SinkItem:
            return out.first_offset, out.last_offset, out.last_log_time, out.items[name]

        return op.map_value(f"{name}__rows", results, item)

    def target(self, deployment: str) -> str:
        return f"{deployment}.{self.table.name}"

    def label(self, deployment: str) -> str:
        return self.target(deployment)


class ProjectionSink(FixedPartitionedSink[SinkItem, int]):
    """Writes one projection table; resume state per partition is the highest offset written."""

    def __init__(
        self,
        database: str,
        table: Table,
        dsn: str,
        partitions: Sequence[int],
        dlq: Callable[[], DlqWriter],
        max_rows: int = 50_000,
        max_delay_s: float = 0.25,
        on_flush: FlushObserver | None = None,
        on_retry: RetryObserver | None = None,
        on_written: WrittenObserver | None = None,
        client_factory: ClientFactory = open_client,
    ) -> None:
        self._on_written = on_written
        self._database = database
        self._table = table
        self._dsn = dsn
        self._keys = [part_key(p) for p in sorted(partitions)]
        self._index = {key: i for i, key in enumerate(self._keys)}
        self._dlq = dlq
        self._max_rows = max_rows
        self._max_delay_s = max_delay_s
        self._on_flush = on_flush
        self._on_retry = on_retry
        self._client_factory = client_factory
        self._built: list[_ProjectionPartition] = []

    def close_all(self) -> None:
        """Release what the partitions opened (Bytewax skips `close` when a run fails); no
        flush here: what a failed run did not write is written again after its restart."""
        for part in self._built:
            part.release()

    def list_parts(self) -> list[str]:
        return list(self._keys)

    def part_fn(self, item_key: str) -> int:
        return self._index[item_key]

    def build_part(
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> _ProjectionPartition:
        return _ProjectionPartition(
            self, self._client_factory(self._dsn), int(for_part), resume_state
        )


class _ProjectionPartition(StatefulSinkPartition[SinkItem, int]):
    def __init__(
        self, sink: ProjectionSink, client: Client, partition: int, written: int | None
    ) -> None:
        self._sink = sink
        self._client = client
        self._partition = partition
        table = sink._table
        self._target = qualified(sink._database, table.name)
        self._token_prefix = f"{sink._database}.{table.name}:{partition}"
        self._names = table.column_names
        self._types = [t for _, t in table.columns]
        self._written = -1 if written is None else written
        self._rows: list[Row] = []
        self._first = -1
        self._last = -1
        self._since = 0.0  # when the oldest buffered batch arrived
        self._log_times: list[int] = []  # newest log time of each buffered batch with rows
        self._dlq: DlqWriter | None = None
        self._released = False

    def write_batch(self, values: list[SinkItem]) -> None:
        now = time.monotonic()
        for first, last, log_time, rows in values:
            if self._first < 0:
                self._first = first
                self._since = now
            self._last = max(self._last, last)
            self._rows.extend(rows)
            if rows:
                self._log_times.append(log_time)
        if len(self._rows) >= self._sink._max_rows or now - self._since >= self._sink._max_delay_s:
            self._flush()

    def snapshot(self) -> int:
        self._flush()
        return self._written

    def close(self) -> None:
        self._flush()
        self.release()

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._client.close()
        if self._dlq is not None:
            self._dlq.close()
            self._dlq = None

    def _flush(self) -> None:
        if self._first < 0:
            return
        started = time.perf_counter()
        token = f"{self._token_prefix}:{self._first}-{self._last}"
        if self._rows:
            self._insert(self._rows, token)
            if self._sink._on_flush is not None:
                self._sink._on_flush(
                    self._sink._table.name, len(self._rows), time.perf_counter() - started
                )
            if self._sink._on_written is not None:
                self._sink._on_written(self._log_times)
        self._written = max(self._written, self._last)
        self._retrying(
            lambda: record_progress(
                self._client,
                self._sink._database,
                self._sink._table.name,
                self._partition,
                self._written,
            )
        )
        self._rows = []
        self._log_times = []
        self._first = self._last = -1

    def _insert(self, rows: list[Row], token: str) -> None:
        """Insert, retrying infrastructure errors; split the batch on a content error until
        the rows ClickHouse refuses are found, send those to the DLQ, and write the rest."""

        def insert() -> None:
            # by columns: cheaper than clickhouse-connect's own pivot (bench.insert_codec)
            self._client.insert(
                self._target,
                list(zip(*rows, strict=True)),
                column_names=self._names,
                column_type_names=self._types,
                column_oriented=True,
                # through a Distributed table (a cluster), the shards' inserts happen before
                # this returns, each with the token, never from a queue after a crash
                settings={
                    "async_insert": 0,
                    "insert_distributed_sync": 1,
                    "insert_deduplication_token": token,
                },
            )

        try:
            self._retrying(insert)
        except Exception as exc:
            if not is_content_error(exc):
                raise
            if len(rows) == 1:
                self._reject(rows[0], exc)
                return
            middle = len(rows) // 2
            self._insert(rows[:middle], f"{token}/a")
            self._insert(rows[middle:], f"{token}/b")

    def _retrying(self, action: Callable[[], None]) -> None:
        backoff = Backoff()
        while True:
            try:
                action()
                return
            except Exception as exc:
                if is_content_error(exc) or is_fatal_error(exc):
                    raise
                if self._sink._on_retry is not None:
                    self._sink._on_retry(self._sink._table.name, exc)
                seconds = backoff.pause()
                log.warning(
                    "insert into %s failed (%s); retried in %.1fs", self._target, exc, seconds
                )

    def _reject(self, row: Row, exc: BaseException) -> None:
        """A row ClickHouse will never take: to the DLQ, as JSON of its columns."""
        named = dict(zip(self._names, row, strict=True))
        version = named.get(self._sink._table.version or "", self._last)
        record = LogRecord(
            partition=self._partition,
            offset=version if isinstance(version, int) else self._last,
            timestamp=int(time.time() * 1000),
            key=self._sink._table.name.encode(),
            value=msgspec.json.encode(named, enc_hook=str),
        )
        rejected = Rejected(
            record=record,
            step=f"{self._sink._table.name}/sink",
            reason=Reason.UNWRITABLE_ROW,
            detail=str(exc).strip(),
        )
        if self._dlq is None:
            self._dlq = self._sink._dlq()
        self._dlq.write([rejected])
