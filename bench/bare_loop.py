"""The floor: what consuming, decoding, folding and inserting cost with no framework at all.

The same kafka-python client, the same decoder, the same rows for both projections of orders v1
(each order's state; paid revenue per minute, region and currency, per partition), inserted in
the same batch sizes the pipeline used in the same run (the harness passes them), into tables
made by the same DDL. No Bytewax, no filter chain (so no schema validation, dedupe or lateness),
no recovery, no progress rows, no metrics. A pipeline's throughput is read against this.
"""

from __future__ import annotations

import time
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

import operators.builtin  # noqa: F401 - the spec names built-in filters
from core.envelope import Envelope, LogRecord, MalformedCommand, decode_command
from core.schema import Table
from dataflows.spec import load_pipeline
from examples.orders import schemas as orders
from examples.orders.order_state import OrderState, apply
from sinks.clickhouse import create_projection_table
from sinks.ddl import create_database, qualified
from sinks.store import open_client

ORDERS_SPEC = Path(__file__).resolve().parents[1] / "examples" / "orders" / "specs" / "orders.yaml"
MINUTE_MS = 60_000
LATENESS_MS = 30_000
#: inserts of this many rows when the harness gives no sizes (`python -m bench.worker bare`)
BATCH_ROWS = 50_000


class _Table:
    """Rows for one table, inserted whenever `batch_rows` of them are waiting."""

    def __init__(self, client: object, target: str, table: Table, batch_rows: int) -> None:
        self.client, self.target, self.batch_rows = client, target, batch_rows
        self.names, self.types = table.column_names, [t for _, t in table.columns]
        self.rows: list[tuple[object, ...]] = []
        self.inserts = 0

    def flush(self, force: bool = False) -> None:
        if len(self.rows) >= self.batch_rows or (force and self.rows):
            self.client.insert(  # type: ignore[attr-defined]
                self.target,
                list(zip(*self.rows, strict=True)),  # by columns, as the project's sink does
                column_names=self.names,
                column_type_names=self.types,  # as the sink: no DESCRIBE before each insert
                column_oriented=True,
                settings={"async_insert": 0},
            )
            self.inserts += 1
            self.rows = []


def consumer_from_start(brokers: str, topic: str, partitions: list[int]) -> KafkaConsumer:
    """One plain consumer of `partitions`, at their first offsets: how the baselines read."""
    consumer = KafkaConsumer(
        bootstrap_servers=brokers,
        enable_auto_commit=False,
        max_poll_records=5000,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    consumer.assign([TopicPartition(topic, p) for p in partitions])
    consumer.seek_to_beginning()
    return consumer


def bare_loop(
    brokers: str,
    topic: str,
    ends: dict[int, int],
    dsn: str,
    database: str,
    decode_only: bool = False,
    batch_rows: dict[str, int] | None = None,
) -> dict[str, float]:
    """Consume `topic` up to `ends`, fold every order and every paid minute, insert the rows;
    the figures. With `decode_only`, stop after decoding (the floor of scenario 1)."""
    client = open_client(dsn)
    client.command(create_database(database))
    tables = {}
    for table in load_pipeline(ORDERS_SPEC).tables:
        create_projection_table(client, database, table)
        tables[table.name] = _Table(
            client,
            qualified(database, table.name),
            table,
            (batch_rows or {}).get(table.name, BATCH_ROWS),
        )
    order_rows, revenue_rows = tables["orders"], tables["revenue_per_minute"]
    consumer = consumer_from_start(brokers, topic, list(ends))
    states: dict[str, OrderState] = {}
    # (partition, window start, region, currency) -> [paid orders, revenue, newest offset]
    windows: dict[tuple[int, int, str, str], list[float]] = {}
    newest: dict[int, int] = {}
    consumed = 0
    total = sum(ends.values())
    started, cpu = time.perf_counter(), time.process_time()
    while consumed < total:
        for tp, messages in consumer.poll(timeout_ms=200).items():
            partition, end = tp.partition, ends[tp.partition]
            touched = set()
            for m in messages:
                if m.offset >= end:
                    continue
                consumed += 1
                record = LogRecord(m.partition, m.offset, m.timestamp, m.key, m.value)
                try:
                    envelope = Envelope(record, decode_command(m.value))
                except MalformedCommand:
                    continue
                if decode_only:
                    continue
                command = envelope.command
                outcome = apply(states.get(command.aggregate_id), envelope)
                if isinstance(outcome, str):
                    continue
                states[command.aggregate_id] = outcome
                order_rows.rows.append(outcome.row(m.offset))
                if command.type == orders.PAID:
                    start = command.ts - command.ts % MINUTE_MS
                    key = (partition, start, outcome.region, command.data["currency"])
                    acc = windows.setdefault(key, [0, 0.0, 0])
                    acc[0] += 1
                    acc[1] += command.data["amount"]
                    acc[2] = m.offset
                    touched.add(key)
                    newest[partition] = max(newest.get(partition, 0), command.ts)
            for key in touched:
                part, start, region, currency = key
                paid, revenue, offset = windows[key]
                revenue_rows.rows.append(
                    (start, start + MINUTE_MS, region, currency, part, 0, paid, revenue, offset)
                )
            horizon = newest.get(partition, 0) - LATENESS_MS
            for key in [k for k in windows if k[0] == partition and k[1] + MINUTE_MS <= horizon]:
                del windows[key]
        for table in tables.values():
            table.flush(force=consumed >= total)
    elapsed = time.perf_counter() - started
    consumer.close()
    return {
        "commands": consumed,
        "seconds": elapsed,
        "commands_per_s": consumed / elapsed,
        "cpu_us_per_command": (time.process_time() - cpu) / consumed * 1e6,
        "inserts": sum(t.inserts for t in tables.values()),
        "rows_per_insert": {name: t.batch_rows for name, t in tables.items()},
    }
