"""dedupe's index side by side in one process: the compact index (flat `array`s), the same
code over numpy arrays, and the dict of ints it replaced. CPU per command through
`Dedupe.process` at steady state (full, every new id evicts the oldest) and bytes per id held.

    python -m bench.dedupe_index [--max-keys N] [--commands N]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from array import array
from typing import Any

import msgspec
import numpy as np

from core.envelope import Command, Envelope, LogRecord
from operators.dedupe import Dedupe, DedupeParams, SeenIds


class DictIds:
    """The index before: a ring in flat arrays and a dict of id hash -> content hash."""

    def __init__(self, capacity: int) -> None:
        self.hashes = array("Q", bytes(8 * capacity))
        self.contents = array("Q", bytes(8 * capacity))
        self.times = array("q", bytes(8 * capacity))
        self.head = self.size = self.newest = 0
        self.seen: dict[int, int] = {}

    def put(self, h: int, content: int, ts: int) -> int | None:
        known = self.seen.get(h)
        if known is not None:
            return known
        capacity = len(self.hashes)
        if self.size == capacity:
            self.seen.pop(self.hashes[self.head], None)
            self.head = (self.head + 1) % capacity
            self.size -= 1
        i = (self.head + self.size) % capacity
        self.hashes[i], self.contents[i], self.times[i] = h, content, ts
        self.size += 1
        self.seen[h] = content
        self.newest = max(self.newest, ts)
        return None

    def expire(self, horizon: int) -> None:
        while self.size and self.times[self.head] < horizon:
            self.seen.pop(self.hashes[self.head], None)
            self.head = (self.head + 1) % len(self.hashes)
            self.size -= 1


def numpy_ids(capacity: int) -> SeenIds:
    state = SeenIds(capacity)
    state.hashes = np.zeros(capacity, np.uint64)  # type: ignore[assignment]
    state.contents = np.zeros(capacity, np.uint64)  # type: ignore[assignment]
    state.times = np.zeros(capacity, np.int64)  # type: ignore[assignment]
    state.slots = np.zeros(len(state.slots), np.uint32)  # type: ignore[assignment]
    return state


VARIANTS = {"compact (array)": SeenIds, "compact (numpy)": numpy_ids, "dict of ints": DictIds}


def batches(commands: int, size: int = 500) -> list[list[Envelope]]:
    """Unique ids, one in twenty sent twice (a producer retry)."""
    out, batch = [], []
    for n in range(commands):
        n_id = n - 7 if n % 20 == 19 else n
        command = Command(id=f"c-{n_id}", type="t", aggregate_id="a", ts=n, v=1, data={})
        batch.append(Envelope(LogRecord(0, n, n, b"a", b'{"n":%d}' % n_id), command))
        if len(batch) == size:
            out.append(batch)
            batch = []
    return out


def measure(max_keys: int, commands: int) -> dict[str, dict[str, Any]]:
    dedupe = Dedupe("dedupe", msgspec.convert({"max_keys": max_keys}, DedupeParams))
    fill, run = batches(max_keys), batches(commands)
    results: dict[str, dict[str, Any]] = {}
    for name, make in VARIANTS.items():
        tracemalloc.start()
        state = make(max_keys)
        for b in fill:
            dedupe.process(state, b)  # type: ignore[arg-type]
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        started = time.process_time()
        for b in run:
            dedupe.process(state, b)  # type: ignore[arg-type]
        cpu = time.process_time() - started
        results[name] = {
            "bytes_per_id": round(held / max_keys, 1),
            "us_per_command": round(cpu / commands * 1e6, 2),
        }
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.dedupe_index")
    parser.add_argument("--max-keys", type=int, default=100_000)
    parser.add_argument("--commands", type=int, default=300_000)
    a = parser.parse_args()
    for name, r in measure(a.max_keys, a.commands).items():
        print(f"{name:16} {r['bytes_per_id']:>6} bytes/id {r['us_per_command']:>6} µs/command")
