"""How many rows one insert stream gets into ClickHouse (the embedded engine), for the capacity
model in deploy/SCALING.md: orders v1's `orders` rows, inserted as the projection sink inserts
them (synchronous, a deduplication token per insert, the table's deduplication window), in the
batch sizes the pipeline reaches, by one stream and by two at once (threads of one process, as
a runtime's sink partitions are). Rows are made before the clock starts: this times the client's
serialisation, the engine's insert and its merges, not the pipeline.

    python -m bench.insert_stream [ROWS_PER_STREAM]
"""

from __future__ import annotations

import random
import resource
import sys
import tempfile
import threading
import time

from core.schema import Table
from examples.orders.order_state import TABLE_COLUMNS
from sinks.clickhouse import create_projection_table
from sinks.ddl import create_database
from sinks.store import open_client

#: rows per insert: the pipeline's own at 6 and 1 partitions (BENCHMARKS.md, scenario 2),
#: and the sink's `max_rows` default
BATCHES = (3_614, 9_483, 50_000)


def rows(n: int, seed: int) -> list[tuple[object, ...]]:
    rng = random.Random(seed)
    return [
        (f"o-{seed:02d}{i:010d}", f"c-{rng.randrange(100_000)}", rng.choice(["eu-west", "us-east"]),
         "EUR", rng.choice(["placed", "paid", "shipped"]), 2, 3, 10.0 + i % 7, 10.0, "card", "",
         "", 1767225600000 + i, 1767225600000 + i, i)
        for i in range(n)
    ]  # fmt: skip


def stream(
    client: object, table: str, data: list[tuple[object, ...]], batch: int, tag: str
) -> None:
    names = [c for c, _ in TABLE_COLUMNS]
    for start in range(0, len(data), batch):
        client.insert(  # type: ignore[attr-defined]
            table,
            data[start : start + batch],
            column_names=names,
            settings={"async_insert": 0, "insert_deduplication_token": f"{tag}:{start}"},
        )


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(per_stream: int) -> None:
    client = open_client(f"chdb://{tempfile.mkdtemp()}/clickhouse")
    client.command(create_database("bench"))
    data = [rows(per_stream, 1), rows(per_stream, 2)]
    print(
        f"{per_stream:,} rows per stream, orders v1's `orders` table ({len(TABLE_COLUMNS)} columns)"
    )
    for batch in BATCHES:
        for streams in (1, 2):
            name = f"orders_{batch}_{streams}"
            create_projection_table(
                client, "bench", Table(name, TABLE_COLUMNS, ("order_id",), "version")
            )
            target = f"bench.{name}"
            threads = [
                threading.Thread(target=stream, args=(client, target, data[i], batch, f"s{i}"))
                for i in range(streams)
            ]
            wall, cpu = time.perf_counter(), cpu_s()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall, cpu = time.perf_counter() - wall, cpu_s() - cpu
            total = streams * per_stream
            print(
                f"batch {batch:>6,}, {streams} stream(s): {total / wall:>9,.0f} rows/s in all, "
                f"{total / wall / streams:>9,.0f} per stream, {cpu / total * 1e6:5.1f} µs CPU/row"
            )
    stored = client.command(
        "SELECT sum(data_compressed_bytes) / sum(rows) FROM system.parts "
        "WHERE database = 'bench' AND active"
    )
    print(f"stored: {float(stored):.1f} bytes per row, compressed (before versions are replaced)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300_000)
