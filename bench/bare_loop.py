"""The floor: what consuming, decoding, folding and inserting cost with no framework at all.

The same kafka-python client, the same decoder, the same order fold and rows, inserts of the
same size into the same kind of table; no Bytewax, no filter chain, no recovery, no metrics.
A pipeline's throughput is read against this, measured in the same run.
"""

from __future__ import annotations

import time

from kafka import KafkaConsumer, TopicPartition

from commands.envelope import Envelope, LogRecord, MalformedCommand, decode_command
from operators.order_state import TABLE_COLUMNS, OrderState, apply
from sinks.clickhouse import create_projection_table
from sinks.ddl import Table, create_database, qualified
from sinks.store import open_client

BATCH_ROWS = 50_000


def bare_loop(
    brokers: str,
    topic: str,
    ends: dict[int, int],
    dsn: str,
    database: str,
    decode_only: bool = False,
) -> dict[str, float]:
    """Consume `topic` up to `ends`, fold every order, insert its rows; the figures. With
    `decode_only`, stop after decoding (the floor of scenario 1)."""
    client = open_client(dsn)
    client.command(create_database(database))
    table = Table("orders", TABLE_COLUMNS, ("order_id",), "version")
    create_projection_table(client, database, table)
    names = table.column_names
    target = qualified(database, "orders")
    consumer = KafkaConsumer(
        bootstrap_servers=brokers,
        enable_auto_commit=False,
        max_poll_records=5000,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    tps = [TopicPartition(topic, p) for p in ends]
    consumer.assign(tps)
    consumer.seek_to_beginning()
    states: dict[str, OrderState] = {}
    rows: list[tuple[object, ...]] = []
    consumed = inserts = 0
    total = sum(ends.values())
    started, cpu = time.perf_counter(), time.process_time()
    while consumed < total:
        for tp, messages in consumer.poll(timeout_ms=200).items():
            for m in messages:
                if m.offset >= ends[tp.partition]:
                    continue
                consumed += 1
                record = LogRecord(m.partition, m.offset, m.timestamp, m.key, m.value)
                try:
                    envelope = Envelope(record, decode_command(m.value))
                except MalformedCommand:
                    continue
                if decode_only:
                    continue
                key = envelope.command.aggregate_id
                outcome = apply(states.get(key), envelope)
                if isinstance(outcome, str):
                    continue
                states[key] = outcome
                rows.append(outcome.row(m.offset))
        if len(rows) >= BATCH_ROWS or (consumed >= total and rows):
            client.insert(target, rows, column_names=names, settings={"async_insert": 0})
            inserts += 1
            rows = []
    elapsed = time.perf_counter() - started
    consumer.close()
    return {
        "commands": consumed,
        "seconds": elapsed,
        "commands_per_s": consumed / elapsed,
        "cpu_us_per_command": (time.process_time() - cpu) / consumed * 1e6,
        "inserts": inserts,
    }
