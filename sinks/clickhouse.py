"""The ClickHouse projection sink: batched, synchronous, idempotent inserts, one sink
partition per log partition (the recovery keys), the partitions of a worker written together
(`sinks.table_batch`).

Bytewax snapshots a sink partition only after its epoch's items were written, and a snapshot
flushes the batch first, so a recovery snapshot never covers a row that is still only in
memory; flushing on `max_delay` keeps rows visible quickly even though epochs (and so
snapshots) are seconds apart. While ClickHouse is failing, the insert is retried and
`write_batch` does not return: Bytewax stops pulling from the source, so memory stays at one
buffer per worker and table.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Annotated

import bytewax.operators as op
import msgspec
from bytewax.dataflow import Stream
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from clickhouse_connect.driver.client import Client

from commands.log import part_key
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
from sinks.store import open_client
from sinks.table_batch import Limits, Observers, Row, SinkItem, TableBatch

#: Inserts remembered per table for token deduplication: a retried batch, or one replayed with
#: the same offset range, within this many inserts is dropped by ClickHouse.
DEDUP_WINDOW = 10_000
#: ...and for how long, on a replicated table (a server's default is an hour or a week by
#: version): a runtime down for a weekend still finds the tokens of what it may repeat
DEDUP_WINDOW_SECONDS = 7 * 24 * 3600


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
    """Writes one projection table; resume state per partition is the highest offset written.

    The sink partitions (one per log partition: the recovery keys) a worker holds share one
    `_TableBatch`: one insert of rows and one of progress per flush for all of them, not one
    pair per partition."""

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
        self._database = database
        self._table = table
        self._dsn = dsn
        self._keys = [part_key(p) for p in sorted(partitions)]
        self._index = {key: i for i, key in enumerate(self._keys)}
        self._dlq = dlq
        self._limits = Limits(max_rows, max_delay_s)
        self._observers = Observers(on_flush, on_retry, on_written)
        self._client_factory = client_factory
        # per worker thread: Bytewax builds, writes and snapshots a worker's parts on its thread
        self._batches: dict[int, TableBatch] = {}

    def close_all(self) -> None:
        """Release what the partitions opened (Bytewax skips `close` when a run fails); no
        flush here: what a failed run did not write is written again after its restart."""
        for batch in self._batches.values():
            batch.release()

    def list_parts(self) -> list[str]:
        return list(self._keys)

    def part_fn(self, item_key: str) -> int:
        return self._index[item_key]

    def build_part(
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> _ProjectionPartition:
        worker = threading.get_ident()
        batch = self._batches.get(worker)
        if batch is None or batch.released:
            batch = self._batches[worker] = TableBatch(
                self._database,
                self._table,
                self._client_factory(self._dsn),
                self._limits,
                self._dlq,
                self._observers,
            )
        partition = int(for_part)
        batch.attach(partition, resume_state)
        return _ProjectionPartition(batch, partition)


class _ProjectionPartition(StatefulSinkPartition[SinkItem, int]):
    """One log partition's recovery key: its rows go to the worker's shared batch, and its
    snapshot (the highest offset written) is taken only after that batch was written."""

    def __init__(self, batch: TableBatch, partition: int) -> None:
        self._batch = batch
        self._partition = partition

    def write_batch(self, values: list[SinkItem]) -> None:
        self._batch.add(self._partition, values)

    def snapshot(self) -> int:
        self._batch.flush()
        return self._batch.written[self._partition]

    def close(self) -> None:
        """Also called when Bytewax drops a part it rebuilt from a recovery snapshot, while the
        worker's other parts go on: the batch is released by the last part that closes."""
        self._batch.flush()
        self._batch.detach()
