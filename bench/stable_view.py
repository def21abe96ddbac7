"""Which form should a current-state view take: `FINAL`, or `argMax(…, version) GROUP BY key`?

Builds an `orders` table of N orders (three versions each, in separate inserts as the sink
writes them, merges stopped so every version is still there) in a fresh embedded store, then
times both forms side by side on a dashboard query (status counts) and a point lookup.

    python -m bench.stable_view [N]
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time

from operators.order_state import TABLE_COLUMNS
from sinks.clickhouse import create_projection_table
from sinks.ddl import Table, create_database
from sinks.store import open_client

ARGMAX = (
    "SELECT t.order_id AS order_id, "
    + ", ".join(
        f"argMax(t.{c}, t.version) AS {c}"
        for c, _ in TABLE_COLUMNS
        if c not in ("order_id", "version")
    )
    + ", max(t.version) AS version FROM bench.orders AS t GROUP BY t.order_id"
)
FINAL = "SELECT * FROM bench.orders FINAL"
QUERIES = {
    "status counts": "SELECT status, count(), sum(amount) FROM ({view}) GROUP BY status",
    "one order": "SELECT * FROM ({view}) WHERE order_id = 'o-000000001234'",
}


def main(n: int) -> None:
    client = open_client(f"chdb://{tempfile.mkdtemp()}/clickhouse")
    client.command(create_database("bench"))
    table = Table("orders", TABLE_COLUMNS, ("order_id",), "version")
    create_projection_table(client, "bench", table)
    client.command("SYSTEM STOP MERGES bench.orders")
    rng = random.Random(1)
    names = table.column_names
    for status, version in (("placed", 0), ("paid", 1), ("shipped", 2)):
        for start in range(0, n, 200_000):
            rows = [
                (f"o-{i:012d}", "c-1", rng.choice(["eu-west", "us-east"]), "EUR", status, 2, 3,
                 10.0 + i % 7, 10.0, "card", "", "", 1767225600000 + i, 1767225600000 + i,
                 version * n + i)
                for i in range(start, min(n, start + 200_000))
            ]  # fmt: skip
            client.insert("bench.orders", rows, column_names=names)
    print(f"{n:,} orders, {3 * n:,} rows, merges stopped")
    for name, query in QUERIES.items():
        times = {}
        for form, view in (("FINAL", FINAL), ("argMax", ARGMAX)):
            sql = query.format(view=view)
            client.query(sql)  # warm
            runs = []
            for _ in range(5):
                started = time.perf_counter()
                client.query(sql)
                runs.append(time.perf_counter() - started)
            times[form] = statistics.median(runs)
        ratio = times["argMax"] / times["FINAL"]
        print(
            f"{name:>14}: FINAL {times['FINAL'] * 1000:8.1f} ms   "
            f"argMax {times['argMax'] * 1000:8.1f} ms   argMax/FINAL {ratio:5.2f}"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
