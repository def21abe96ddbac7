"""The peer: Quix Streams doing the orders work (consume, decode, fold each order in Quix's
keyed state, insert the rows into ClickHouse at each checkpoint). It runs in its own
virtualenv (`.cache/bench-quix`: Quix pins its own confluent-kafka), with this repository on
PYTHONPATH for the same decoder and the same order fold.

    .cache/bench-quix/bin/python -m bench.quix_peer '<json arguments>'
"""

from __future__ import annotations

import json
import resource
import sys
import time
import uuid
from typing import Any

import clickhouse_connect
import msgspec
from quixstreams import Application, State
from quixstreams.sinks import BatchingSink, SinkBatch

from core.envelope import Envelope, LogRecord, MalformedCommand, decode_command
from examples.orders.order_state import TABLE_COLUMNS, OrderState, apply

NAMES = [name for name, _ in TABLE_COLUMNS]


class ClickHouseRows(BatchingSink):
    def __init__(self, dsn: str) -> None:
        super().__init__()
        self._client = clickhouse_connect.get_client(dsn=dsn)
        columns = ", ".join(f"`{n}` {t}" for n, t in TABLE_COLUMNS)
        self._client.command("CREATE DATABASE IF NOT EXISTS quix")
        self._client.command(
            f"CREATE TABLE IF NOT EXISTS quix.orders ({columns}) "
            f"ENGINE = ReplacingMergeTree(version) ORDER BY order_id"
        )
        self.inserts: list[int] = []

    def write(self, batch: SinkBatch) -> None:
        rows = [tuple(item.value) for item in batch if item.value is not None]
        if rows:
            self._client.insert("quix.orders", rows, column_names=NAMES)
            self.inserts.append(len(rows))


def main(args: dict[str, Any]) -> dict[str, Any]:
    total = args["total"]
    app = Application(
        broker_address=args["brokers"],
        consumer_group=f"bench-quix-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        commit_interval=5.0,
        state_dir=f"{args['work']}/quix-state",
    )
    topic = app.topic(args["topic"], value_deserializer="bytes", key_deserializer="bytes")
    sink = ClickHouseRows(f"chdb://{args['work']}/clickhouse")
    seen = {"n": 0}

    def fold(value: bytes, key: Any, timestamp: int, headers: Any, state: State) -> Any:
        seen["n"] += 1
        if seen["n"] >= total:
            app.stop()
        try:
            command = decode_command(value)
        except MalformedCommand:
            return None
        stored = state.get("order")
        current = msgspec.convert(stored, OrderState) if stored is not None else None
        envelope = Envelope(LogRecord(0, seen["n"], timestamp, key, value), command)
        outcome = apply(current, envelope)
        if isinstance(outcome, str):
            return None
        state.set("order", msgspec.to_builtins(outcome))
        return list(outcome.row(seen["n"]))

    sdf = app.dataframe(topic)
    sdf = sdf.apply(fold, stateful=True, metadata=True)
    sdf.sink(sink)
    started, cpu = time.perf_counter(), time.process_time()
    app.run()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "commands": seen["n"],
        "seconds": round(elapsed, 2),
        "commands_per_s": round(seen["n"] / elapsed),
        "cpu_us_per_command": round(cpu / max(1, seen["n"]) * 1e6, 1),
        "rows_per_insert": round(sum(sink.inserts) / len(sink.inserts)) if sink.inserts else 0,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
