"""Scenario 5 (peak RSS of orders v1 over a long stream) on its own, for this checkout and, side by
side on the same broker and topic, another one (`--against`: a directory holding an older
commit, say `git archive <commit> | tar -x -C <dir>`): what a change did to the memory. With
`--null-store`, this checkout also runs without the embedded engine (its inserts serialised and
dropped): the pipeline process's own memory, as it would be beside a ClickHouse server.

The job's own figures sample its RSS every half second and report one sample in ten: a
transient of a second or two decides the peak (`ru_maxrss`) and shows in none of them. So this
harness also reads each job's `/proc/<pid>/smaps_rollup` from outside every `--sample-ms`
(no GIL in the way), split into anonymous memory and pages of files (code, mostly: chDB's
library), and says when the peak came: its time, and the flat part around it.

    python -m bench.memory [--commands N] [--against DIR] [--null-store] [--sample-ms MS]
                           [--brokers HOST:PORT --topic T]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.__main__ import ORDERS_SPEC, REPO, WORK, fill, log
from deploy.broker import KafkaDistribution, LocalBroker

Sample = tuple[float, int, int]  # (seconds since the job's process started, anon MB, file MB)


def rollup(pid: int) -> tuple[int, int] | None:
    """(anonymous, file-backed) resident MB of a process; None once it is gone."""
    fields: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                name, _, rest = line.partition(":")
                parts = rest.split()
                if len(parts) == 2 and parts[1] == "kB":
                    fields[name] = int(parts[0])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    if "Rss" not in fields:
        return None
    anon = fields.get("Anonymous", 0)
    return anon // 1024, (fields["Rss"] - anon) // 1024


@contextmanager
def sampling(pid: int, every_s: float) -> Iterator[list[Sample]]:
    samples: list[Sample] = []
    done = threading.Event()
    started = time.monotonic()

    def watch() -> None:
        while not done.wait(every_s):
            found = rollup(pid)
            if found is not None:
                samples.append((round(time.monotonic() - started, 2), *found))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield samples
    finally:
        done.set()
        watcher.join()


def shape(samples: list[Sample], run_s: float) -> dict[str, Any]:
    """Where the peak is against the run (its last `run_s` seconds of the process, minus the
    stop): the flat part is the middle 80% of the run's samples."""
    if not samples:
        return {}
    end = samples[-1][0]
    run = [s for s in samples if s[0] >= end - run_s] or samples
    totals = sorted(a + f for _, a, f in run[len(run) // 10 :])
    at, anon, file = max(samples, key=lambda s: s[1] + s[2])
    return {
        "sampled_peak_mb": anon + file,
        "peak_at_s": at,
        "peak_anon_file_mb": [anon, file],
        "run_from_s": round(end - run_s, 1),
        "flat_p10_p50_p90_mb": [totals[len(totals) * q // 10] for q in (1, 5, 9)],
        "samples": samples,
    }


def run(
    checkout: Path, name: str, kind: str, args: dict[str, Any], every_s: float
) -> dict[str, Any]:
    """A job of `checkout`'s own bench worker, with its code first on the path."""
    work = WORK / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log(f"{name} …")
    env = {**os.environ, "PYTHONPATH": str(checkout), "PYTHONDONTWRITEBYTECODE": "1"}
    job = subprocess.Popen(
        [sys.executable, "-m", "bench.worker", kind, json.dumps({**args, "work": str(work)})],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=checkout,
    )  # fmt: skip
    with sampling(job.pid, every_s) as samples:
        out, err = job.communicate(timeout=3600)
    if job.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    return result | shape(samples, result["seconds"])


def main(
    commands: int,
    against: Path | None,
    null_store: bool,
    every_s: float = 0.1,
    brokers: str | None = None,
    topic: str = "memory6",
) -> dict[str, dict[str, Any]]:
    WORK.mkdir(parents=True, exist_ok=True)
    broker = None
    if brokers is None:
        shutil.rmtree(WORK / "memory-broker", ignore_errors=True)  # a fresh log: this run's topic
        broker = LocalBroker(WORK / "memory-broker", KafkaDistribution(REPO / ".cache"))
        brokers = broker.start().bootstrap
    results = {}
    try:
        if broker is not None:
            fill(brokers, topic, 6, commands)
        args = {"brokers": brokers, "topic": topic, "spec": ORDERS_SPEC}
        results["this checkout"] = run(REPO, "memory-this", "ours", args, every_s)
        if against is not None:
            other = run(against.resolve(), "memory-against", "ours", args, every_s)
            results[str(against)] = other
        if null_store:
            null = {**args, "store": "null"}
            results["this checkout, no engine"] = run(REPO, "memory-null", "ours", null, every_s)
    finally:
        if broker is not None:
            broker.stop()
    for name, r in results.items():
        over_time = ", ".join(str(mb) for _, mb in r["rss_mb_over_time"])
        print(
            f"{name}: peak {r['peak_rss_mb']} MB over {r['commands']:,} commands, "
            f"{r['commands_per_s']:,} cmd/s, {r['cpu_us_per_command']} µs CPU/cmd "
            f"(RSS over time: {over_time} MB)"
        )
        if "sampled_peak_mb" in r:
            anon, file = r["peak_anon_file_mb"]
            p10, p50, p90 = r["flat_p10_p50_p90_mb"]
            print(
                f"  every {every_s:g} s from outside: peak {r['sampled_peak_mb']} MB "
                f"({anon} anon + {file} file) at {r['peak_at_s']} s; the run from "
                f"{r['run_from_s']} s, flat p10/p50/p90 {p10}/{p50}/{p90} MB"
            )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.memory")
    parser.add_argument("--commands", type=int, default=5_000_000)
    parser.add_argument("--against", type=Path)
    parser.add_argument(
        "--null-store",
        action="store_true",
        help="also run this checkout without the engine in process (bench.null_store)",
    )
    parser.add_argument(
        "--sample-ms", type=int, default=100, help="how often RSS is read from outside the job"
    )
    parser.add_argument(
        "--brokers",
        help="a running broker whose --topic is already filled (no fill, --commands unused)",
    )
    parser.add_argument("--topic", default="memory6")
    parser.add_argument("--json", type=Path, help="write every figure and sample here")
    a = parser.parse_args()
    found = main(a.commands, a.against, a.null_store, a.sample_ms / 1000, a.brokers, a.topic)
    if a.json is not None:
        a.json.write_text(json.dumps(found))
