"""Scenario 5 (peak RSS of orders v1 over a long stream) on its own, for this checkout and, side by
side on the same broker and topic, another one (`--against`: a directory holding an older
commit, say `git archive <commit> | tar -x -C <dir>`): what a change did to the memory. With
`--null-store`, this checkout also runs without the embedded engine (its inserts serialised and
dropped): the pipeline process's own memory, as it would be beside a ClickHouse server.

    python -m bench.memory [--commands N] [--against DIR] [--null-store]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.__main__ import ORDERS_SPEC, REPO, WORK, fill, log
from deploy.broker import KafkaDistribution, LocalBroker


def run(checkout: Path, name: str, kind: str, args: dict[str, Any]) -> dict[str, Any]:
    """A job of `checkout`'s own bench worker, with its code first on the path."""
    work = WORK / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log(f"{name} …")
    env = {**os.environ, "PYTHONPATH": str(checkout), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "bench.worker", kind, json.dumps({**args, "work": str(work)})],
        capture_output=True, text=True, env=env, cwd=checkout, timeout=3600,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(commands: int, against: Path | None, null_store: bool) -> dict[str, dict[str, Any]]:
    WORK.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(WORK / "memory-broker", ignore_errors=True)  # a fresh log: only this run's topic
    broker = LocalBroker(WORK / "memory-broker", KafkaDistribution(REPO / ".cache"))
    brokers = broker.start().bootstrap
    results = {}
    try:
        fill(brokers, "memory6", 6, commands)
        args = {"brokers": brokers, "topic": "memory6", "spec": ORDERS_SPEC}
        results["this checkout"] = run(REPO, "memory-this", "ours", args)
        if against is not None:
            results[str(against)] = run(against.resolve(), "memory-against", "ours", args)
        if null_store:
            null = {**args, "store": "null"}
            results["this checkout, no engine"] = run(REPO, "memory-null", "ours", null)
    finally:
        broker.stop()
    for name, r in results.items():
        over_time = ", ".join(str(mb) for _, mb in r["rss_mb_over_time"])
        print(
            f"{name}: peak {r['peak_rss_mb']} MB over {r['commands']:,} commands, "
            f"{r['commands_per_s']:,} cmd/s, {r['cpu_us_per_command']} µs CPU/cmd "
            f"(RSS over time: {over_time} MB)"
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
    a = parser.parse_args()
    main(a.commands, a.against, a.null_store)
