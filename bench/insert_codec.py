"""Insert serialisation per row, side by side in one process: the orders v1 projections' real
rows (the executor's output for generated orders), serialised to ClickHouse's Native format
by clickhouse-connect's Python codec (its C helpers active) and by the compiled codec of
`clickhouse-connect-core`, from rows and from columns; then inserted into the embedded engine.

    python -m bench.insert_codec [--commands N] [--batch N]
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import clickhouse_connect.driver.ctypes as ctypes
from clickhouse_connect.driver.rustcodec import _make_native_transform

import operators.builtin  # noqa: F401
from core.envelope import LogRecord, Polled, encode_command
from dataflows.executor import PartitionPipeline
from dataflows.spec import load_pipeline
from examples.orders.generator import OrderGenerator
from sinks.clickhouse import create_projection_table
from sinks.store import open_client

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "examples" / "orders" / "specs" / "orders.yaml"


def projected_rows(commands: int, batch: int) -> dict[str, list[list[tuple[Any, ...]]]]:
    """The rows each projection table gets, batch by batch, as the sink buffers them."""
    pipeline = load_pipeline(SPEC)
    executor = PartitionPipeline(pipeline)
    stream = itertools.islice(OrderGenerator(seed=1, step_ms=5), commands)
    records = [
        LogRecord(0, n, c.ts, c.aggregate_id.encode(), encode_command(c))
        for n, c in enumerate(stream)
    ]
    by_table: dict[str, list[list[tuple[Any, ...]]]] = {}
    for start in range(0, len(records), batch):
        chunk = records[start : start + batch]
        out = executor.run(Polled(0, chunk, chunk[-1].offset + 1))
        for name, rows in out.items.items():
            if rows:
                by_table.setdefault(name, []).append(rows)
    return by_table


def main(commands: int, batch: int) -> None:
    c_active = ctypes.data_conv.__name__
    print(f"clickhouse-connect row pivot and column writers: {c_active}")
    tables = {t.name: t for t in load_pipeline(SPEC).tables}
    rows = projected_rows(commands, batch)
    work = Path(tempfile.mkdtemp(prefix="bench-insert-"))
    try:
        client = open_client(f"chdb://{work / 'store'}")
        client.command("CREATE DATABASE IF NOT EXISTS b")
        codecs = {
            "python": _make_native_transform("python"),
            "rust": _make_native_transform("rust"),
        }
        for name, batches in rows.items():
            table = tables[name]
            create_projection_table(client, "b", table)
            names, types = table.column_names, [t for _, t in table.columns]
            total = sum(len(b) for b in batches)
            for codec, transform in codecs.items():
                for columns in (False, True):
                    started = time.process_time()  # the transposition is part of the cost
                    data = [list(zip(*b, strict=True)) if columns else b for b in batches]
                    for d in data:
                        context = client.create_insert_context(
                            f"b.{name}",
                            column_names=names,
                            column_type_names=types,
                            data=d,
                            column_oriented=columns,
                        )
                        for _ in transform.build_insert(context):
                            pass
                    serialise = time.process_time() - started
                    client._transform = transform  # type: ignore[attr-defined]
                    started = time.process_time()
                    for d in data:
                        client.insert(
                            f"b.{name}",
                            d,
                            column_names=names,
                            column_type_names=types,
                            column_oriented=columns,
                            settings={"async_insert": 0},
                        )
                    insert = time.process_time() - started
                    shape = "columns" if columns else "rows"
                    print(
                        f"{name:20} {codec:6} {shape:7} serialise "
                        f"{serialise / total * 1e6:5.2f} µs/row   insert (CPU, all threads) "
                        f"{insert / total * 1e6:5.2f} µs/row   ({total:,} rows)"
                    )
        client.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.insert_codec")
    parser.add_argument("--commands", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5_000)
    a = parser.parse_args()
    main(a.commands, a.batch)
