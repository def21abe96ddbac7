"""dedupe's compiled index on its own: CPU per command through `Dedupe.process` at steady state
(full, every new id evicts the oldest), the bytes it holds per id, and what a snapshot and a
restore of a worker's six partitions cost (what Bytewax recovery pays at every epoch, and at
a start).

    python -m bench.dedupe_index [--max-keys N] [--commands N] [--partitions N]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import msgspec

from core.envelope import Command, Envelope, LogRecord
from operators.dedupe import Dedupe, DedupeParams


def batches(commands: int, size: int = 5_000) -> list[list[Envelope]]:
    """Unique ids, one in twenty sent twice (a producer retry)."""
    out, batch = [], []
    for n in range(commands):
        n_id = n - 7 if n % 20 == 19 else n
        command = Command(id=f"c-{n_id}", type="t", aggregate_id="a", ts=n, v=1, data={})
        batch.append(Envelope(LogRecord(0, n, n, b"a", b'{"n":%d}' % n_id), command))
        if len(batch) == size:
            out.append(batch)
            batch = []
    return [*out, batch] if batch else out


def measure(max_keys: int, commands: int, partitions: int) -> dict[str, Any]:
    dedupe = Dedupe("dedupe", msgspec.convert({"max_keys": max_keys}, DedupeParams))
    fill, run = batches(max_keys), batches(commands)
    states = []
    for _ in range(partitions):
        state = dedupe.restore(None)
        for b in fill:
            dedupe.process(state, b)
        states.append(state)
    started = time.process_time()
    for b in run:
        dedupe.process(states[0], b)
    cpu = time.process_time() - started
    snapshot_s = restore_s = float("inf")
    for _ in range(5):  # the fastest of five: a memory copy each, under the machine's noise
        started = time.perf_counter()
        snapshots = [dedupe.snapshot(s) for s in states]
        snapshot_s = min(snapshot_s, time.perf_counter() - started)
        started = time.perf_counter()
        for s in snapshots:
            dedupe.restore(s)
        restore_s = min(restore_s, time.perf_counter() - started)
    return {
        "us_per_command": round(cpu / commands * 1e6, 3),
        "bytes_per_id": round(states[0].nbytes / max_keys, 1),
        "snapshot_ms": round(snapshot_s * 1e3, 2),
        "restore_ms": round(restore_s * 1e3, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.dedupe_index")
    parser.add_argument("--max-keys", type=int, default=100_000)
    parser.add_argument("--commands", type=int, default=300_000)
    parser.add_argument("--partitions", type=int, default=6)
    a = parser.parse_args()
    r = measure(a.max_keys, a.commands, a.partitions)
    print(
        f"{r['us_per_command']} µs/command, {r['bytes_per_id']} bytes/id; "
        f"{a.partitions} x {a.max_keys:,} ids: snapshot {r['snapshot_ms']} ms, "
        f"restore {r['restore_ms']} ms"
    )
