"""Which form should a current-state view take: `FINAL`, or `argMax(…, version) GROUP BY key`?
And what does the stable layer's one-switch view (a branch per deployment, each guarded by the
pointer subquery) cost a query over reading the table with FINAL directly?

Builds an `orders` table of N orders (three versions each, in separate inserts as the sink
writes them, merges stopped so every version is still there) in a fresh embedded store, and a
second, empty deployment's table as the inactive branch, then times the forms side by side on
a dashboard query (status counts) and a point lookup. Then what the guarded query path
(`deploy.query.Reader`: ClickHouse's parser checks the statement, in a read-only session) adds
to the same queries over the stable view, as `cqrs query` and the dashboard run them.

    python -m bench.stable_view [N]
"""

from __future__ import annotations

import dataclasses
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from core.schema import Table
from dataflows.spec import load_pipeline
from deploy.query import Reader
from deploy.stable import StableLayer
from examples.orders.order_state import TABLE_COLUMNS
from sinks.clickhouse import create_projection_table
from sinks.ddl import create_database
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


def _median_s(run: object, sql: str) -> float:
    run(sql)  # warm
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        run(sql)
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main(n: int) -> None:
    dsn = f"chdb://{tempfile.mkdtemp()}/clickhouse"
    client = open_client(dsn)
    client.command(create_database("bench"))
    table = Table("orders", TABLE_COLUMNS, ("order_id",), "version")
    create_projection_table(client, "bench", table)
    client.command("SYSTEM STOP MERGES bench.orders")
    rng = random.Random(1)
    names = table.column_names
    for status, version in (("placed", 0), ("paid", 1), ("shipped", 2)):
        for start in range(0, n, 200_000):
            rows = [
                (
                    f"o-{i:012d}",
                    "c-1",
                    rng.choice(["eu-west", "us-east"]),
                    "EUR",
                    status,
                    2,
                    3,
                    10.0 + i % 7,
                    10.0,
                    "card",
                    "",
                    "",
                    1767225600000 + i,
                    1767225600000 + i,
                    version * n + i,
                )
                for i in range(start, min(n, start + 200_000))
            ]
            client.insert("bench.orders", rows, column_names=names)
    print(f"{n:,} orders, {3 * n:,} rows, merges stopped")
    layer = StableLayer(client, "benchctl", "benchq")
    layer.create_tables()
    client.command(create_database("bench_green"))
    create_projection_table(client, "bench_green", table)
    spec = load_pipeline(
        Path(__file__).resolve().parents[1] / "examples" / "orders" / "specs" / "orders.yaml"
    )
    orders_only = dataclasses.replace(spec, projections=spec.projections[:1])
    layer.switch("orders", "bench")
    layer.rebuild("orders", [("bench", orders_only), ("bench_green", orders_only)])
    stable = "SELECT * FROM benchq.orders"
    for name, query in QUERIES.items():
        times = {}
        for form, view in (("FINAL", FINAL), ("argMax", ARGMAX), ("stable", stable)):
            times[form] = _median_s(client.query, query.format(view=view))
        final = times["FINAL"]
        print(
            f"{name:>14}: FINAL {final * 1000:8.1f} ms   "
            f"argMax {times['argMax'] * 1000:8.1f} ms ({times['argMax'] / final:4.2f}x)   "
            f"stable view {times['stable'] * 1000:8.1f} ms ({times['stable'] / final:4.2f}x)"
        )
    for name, query in {**QUERIES, "trivial": "SELECT 1 FROM ({view}) LIMIT 0"}.items():
        plain, guarded = query_path(dsn, query.format(view=stable))
        print(
            f"{name:>14}: plain session {plain * 1000:8.1f} ms   query path "
            f"{guarded * 1000:8.1f} ms (+{(guarded - plain) * 1000:.1f} ms)"
        )


def query_path(dsn: str, sql: str) -> tuple[float, float]:
    """The median seconds of `sql` on a plain session and through the guarded query path."""
    reader = Reader(dsn, timeout_s=30.0)
    return _median_s(open_client(dsn).query, sql), _median_s(reader.query, sql)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
