"""What each setting of the embedded engine does to a process that lives through many deploys.

Each variant runs in a process of its own (chDB starts its engine once per process, with the
first connection's settings). A cycle is what a deploy does to the store: a database with a
projection-like table and a progress table, six clients inserting batches in threads (as the
sink partitions of two projections over three log partitions do) while another reads what
`cqrs status` and the stable views read (one reader more each cycle, as the peaks of queries a
long-lived runtime sees add up), then the clients close and the database is dropped.
After each cycle the process's threads, open files and resident memory are sampled, with the
engine's own gauges (its global thread pool, its caches).

    python -m bench.engine_pools [cycles]     (default 12; prints a table, then JSON)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sinks.store import ENGINE_SETTINGS

#: (label, settings, given on the connection instead of the configuration file): chDB's
#: defaults, the pool settings as chDB's connection string takes them (which changes nothing),
#: every setting alone, then all of them
VARIANTS: list[tuple[str, dict[str, str], bool]] = [
    ("chDB defaults", {}, False),
    (
        "pools on the connection string",
        {k: v for k, v in ENGINE_SETTINGS.items() if "pool" in k},
        True,
    ),
    *((name, {name: value}, False) for name, value in ENGINE_SETTINGS.items()),
    ("all (the project's)", dict(ENGINE_SETTINGS), False),
]
_GAUGES = (
    "GlobalThread",
    "GlobalThreadActive",
    "MarkCacheBytes",
    "PrimaryIndexCacheBytes",
    "QueryConditionCacheBytes",
    "CompiledExpressionCacheBytes",
    "MemoryTracking",
)


def process_footprint(pid: int) -> dict[str, int]:
    """Threads, open files (and how many are /proc files or sockets) and RSS of a process."""
    proc = Path(f"/proc/{pid}")
    links = []
    for fd in (proc / "fd").iterdir():
        try:
            links.append(os.readlink(fd))
        except OSError:  # closed while listed
            continue
    rss_kb = next(
        int(line.split()[1])
        for line in (proc / "status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )
    return {
        "threads": sum(1 for _ in (proc / "task").iterdir()),
        "fds": len(links),
        "proc_fds": sum(1 for link in links if link.startswith("/proc/")),
        "sockets": sum(1 for link in links if link.startswith("socket:")),
        "rss_mb": rss_kb // 1024,
    }


def _cycle(dsn: str, n: int, seconds: float) -> None:
    from sinks.store import open_client

    admin = open_client(dsn)
    db = f"d{n}"
    admin.command(f"CREATE DATABASE {db}")
    admin.command(
        f"CREATE TABLE {db}.orders (order_id String, status String, amount Float64, "
        f"version UInt64) ENGINE = ReplacingMergeTree(version) ORDER BY order_id "
        f"SETTINGS non_replicated_deduplication_window = 10000"
    )
    admin.command(
        f"CREATE TABLE {db}._progress (`projection` String, `partition` UInt16, `offset` Int64) "
        f"ENGINE = ReplacingMergeTree(`offset`) ORDER BY (`projection`, `partition`)"
    )
    stop = threading.Event()

    def insert(part: int) -> None:
        client = open_client(dsn)
        offset = 0
        while not stop.is_set():
            rows = [(f"o{part}-{offset + i}", "paid", 1.5 * i, offset + i) for i in range(2000)]
            client.insert(f"{db}.orders", rows, column_names=["order_id", "status", "amount",
                                                              "version"])  # fmt: skip
            client.insert(f"{db}._progress", [("orders", part, offset)],
                          column_names=["projection", "partition", "offset"])  # fmt: skip
            offset += 2000
            time.sleep(0.25)
        client.close()

    def read() -> None:
        client = open_client(dsn)
        while not stop.is_set():
            client.command(f"SELECT count() FROM system.tables WHERE database = '{db}'")
            client.query(f"SELECT `partition`, max(`offset`) FROM {db}._progress GROUP BY 1")
            client.query(f"SELECT status, count(), sum(amount) FROM {db}.orders FINAL "
                         f"WHERE amount > 10 GROUP BY status")  # fmt: skip
            time.sleep(0.2)
        client.close()

    threads = [threading.Thread(target=insert, args=(p,)) for p in range(6)]
    threads += [threading.Thread(target=read) for _ in range(2 + n)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    admin.command(f"DROP DATABASE {db} SYNC")
    admin.close()


def run_variant(
    settings: dict[str, str], on_connection: bool, cycles: int, seconds: float
) -> list[dict[str, Any]]:
    """In this process: the cycles, with a footprint after each."""
    from sinks import store

    path = Path(tempfile.mkdtemp(prefix="engine-pools-")) / "clickhouse"
    dsn = f"chdb://{path}"
    store.ENGINE_SETTINGS.clear()
    if on_connection:
        with store._lock:
            store._hold_embedded(path)
            store._started = True  # no configuration file: the settings ride on the connection
        keeper = store._connect(dsn, chdb_options=settings)
    else:
        store.ENGINE_SETTINGS.update(settings)
        keeper = store.open_client(dsn)  # the runtime's own client: the engine lives on
    out = []
    for n in range(cycles):
        _cycle(dsn, n, seconds)
        time.sleep(1.0)  # idle threads past the pool's limit end as their tasks do
        gauges = dict(
            keeper.query(
                "SELECT metric, toInt64(value) FROM system.metrics WHERE metric IN "
                f"{tuple(_GAUGES)}"
            ).result_rows
        )
        out.append({"cycle": n + 1, **process_footprint(os.getpid()), **gauges})
    return out


def main(cycles: int) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {}
    for name, settings, on_connection in VARIANTS:
        done = subprocess.run(
            [sys.executable, "-m", "bench.engine_pools", "--variant",
             json.dumps([settings, on_connection]), str(cycles)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        results[name] = json.loads(done.stdout.splitlines()[-1])
        first, last = results[name][0], results[name][-1]
        print(
            f"{name:<44} threads {first['threads']:>3} → {last['threads']:>3}  "
            f"fds {first['fds']:>4} → {last['fds']:>4} (/proc {last['proc_fds']:>3})  "
            f"RSS {first['rss_mb']:>4} → {last['rss_mb']:>4} MB  "
            f"pool {last['GlobalThread']:>3} ({last['GlobalThreadActive']} busy)  "
            f"marks {last['MarkCacheBytes'] // 1024:>6} KB",
            flush=True,
        )
    return results


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--variant":
        settings, on_connection = json.loads(sys.argv[2])
        print(json.dumps(run_variant(settings, on_connection, int(sys.argv[3]), 4.0)))
    else:
        print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 12)))
