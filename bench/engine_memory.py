"""The embedded engine's resident memory under each setting, side by side in one run.

Each variant runs in a process of its own (chDB starts its engine once per process, with the
first connection's settings): RSS when the engine has started; then the orders v1 projections'
real rows (the executor's output for generated orders) inserted as the sink inserts them, by
columns with a deduplication token, batch after batch; the peak RSS from the start on (VmHWM,
reset once the engine is up), the RSS at the end, split into anonymous memory and file pages
(chDB's library code), and the time the inserts took. The rows are made batch by batch, so the
Python side holds one batch at a time.

    python -m bench.engine_memory [--commands N] [--batch N]
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: (label, engine settings beyond the project's, trim the library after start)
VARIANTS: list[tuple[str, dict[str, str], bool]] = [
    ("the project's settings", {}, False),
    (
        "+ fewer scheduler threads, bounded index caches",
        {
            "background_schedule_pool_initial_size": "4",
            "index_mark_cache_size": str(16 * 1024 * 1024),
            "primary_index_cache_size": str(16 * 1024 * 1024),
            "unique_key_index_cache_size_bytes": str(16 * 1024 * 1024),
        },
        False,
    ),
    ("+ memory cap 1 GiB", {"max_server_memory_usage": str(2**30)}, False),
    ("+ library pages trimmed after start", {}, True),
]


def status() -> dict[str, int]:
    wanted = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads")
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in wanted:
            n = int(value.split()[0])
            out[key] = n if key == "Threads" else n // 1024
    return out


def run_variant(settings: dict[str, str], trim: bool, commands: int, batch: int) -> dict[str, Any]:
    """In this process: start the engine, insert what the projections make of `commands`."""
    import operators.builtin  # noqa: F401
    from core.envelope import LogRecord, Polled, encode_command
    from dataflows.executor import PartitionPipeline
    from dataflows.spec import load_pipeline
    from examples.orders.generator import OrderGenerator
    from sinks import store
    from sinks.clickhouse import create_projection_table

    store.ENGINE_SETTINGS.update(settings)
    store.TRIM_LIBRARY = trim
    client = store.open_client(f"chdb://{tempfile.mkdtemp(prefix='engine-memory-')}/store")
    started = status()
    Path("/proc/self/clear_refs").write_text("5")  # the peak from here on
    pipeline = load_pipeline("examples/orders/specs/orders.yaml")
    client.command("CREATE DATABASE b")
    tables = {t.name: t for t in pipeline.tables}
    for t in tables.values():
        create_projection_table(client, "b", t)
    executor = PartitionPipeline(pipeline)
    stream = itertools.islice(OrderGenerator(seed=1, step_ms=5), commands)
    wall, cpu = time.perf_counter(), time.process_time()
    offset = 0
    while chunk := [
        LogRecord(0, offset + n, c.ts, c.aggregate_id.encode(), encode_command(c))
        for n, c in enumerate(itertools.islice(stream, batch))
    ]:
        out = executor.run(Polled(0, chunk, chunk[-1].offset + 1))
        for name, rows in out.items.items():
            if rows:
                t = tables[name]
                client.insert(
                    f"b.{name}",
                    list(zip(*rows, strict=True)),
                    column_names=t.column_names,
                    column_type_names=[ty for _, ty in t.columns],
                    column_oriented=True,
                    settings={"insert_deduplication_token": f"{name}:{offset}"},
                )
        offset += len(chunk)
    client.query("SELECT count() FROM b.orders FINAL")
    return {
        "start": started,
        "end": status(),
        "insert_s": round(time.perf_counter() - wall, 1),
        "cpu_s": round(time.process_time() - cpu, 1),
    }


def main(commands: int, batch: int) -> dict[str, Any]:
    results = {}
    for name, settings, trim in VARIANTS:
        done = subprocess.run(
            [sys.executable, "-m", "bench.engine_memory", "--variant",
             json.dumps([settings, trim]), "--commands", str(commands), "--batch", str(batch)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        r = results[name] = json.loads(done.stdout.splitlines()[-1])
        s, e = r["start"], r["end"]
        print(
            f"{name:<50} start {s['VmRSS']:>4} MB (anon {s['RssAnon']:>3}, file {s['RssFile']:>3}"
            f", {s['Threads']} threads)  peak {e['VmHWM']:>4} MB  end {e['VmRSS']:>4} MB "
            f"(anon {e['RssAnon']:>3}, file {e['RssFile']:>3})  {r['insert_s']:>5} s, "
            f"{r['cpu_s']:>5} s CPU",
            flush=True,
        )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.engine_memory")
    parser.add_argument("--commands", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.variant:
        settings, trim = json.loads(a.variant)
        print(json.dumps(run_variant(settings, trim, a.commands, a.batch)))
    else:
        print(json.dumps(main(a.commands, a.batch)))
