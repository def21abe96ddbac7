"""The executor alone (no log, no engine) on orders v1: CPU per command of `PartitionPipeline.run`
over polls of the orders generator, for this checkout and, alternating with it in the same run,
another one (`--against`: a directory holding an older commit, say `git archive <commit> | tar -x
-C <dir>`): what a change to the filters or the executor did per command.

    python -m bench.executor [--against DIR] [--rounds N] [--batches N] [--batch-size N]
    python -m bench.executor --steps [--rounds N] [--batch-size N]
    python -m bench.executor --end-to-end N --against DIR [--rounds N]

Each round runs each checkout in a fresh process of its own (its code first on the path), with
the collector tuned as the runtime tunes it; the figure is process time over commands.

`--steps` looks closer, in this process: each stateless step of orders v1 (and decoding) over
the same polls, through its batch path and through its per-record path (what the executor ran
before batch paths), alternating, the fastest of the rounds of each: a step's gain is a tenth
of the executor's time or less, under the noise of a whole run on a shared machine.

`--end-to-end` is scenario 2 (orders v1 from earliest to caught up, 6 partitions, the real
broker and the embedded engine) for this checkout, the other one and the bare loop, one after
the other on one broker and topic: the ratio to the bare loop before and after, in one run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import operators.builtin  # noqa: F401 - registers the filters the spec names
from bench import memory
from bench.__main__ import ORDERS_SPEC, REPO, WORK, fill, log
from core.envelope import LogRecord, encode_command
from dataflows.executor import PartitionPipeline, _Tally
from dataflows.spec import load_pipeline
from deploy.broker import KafkaDistribution, LocalBroker
from deploy.memory import tune_collector
from examples.orders.generator import OrderGenerator
from operators.base import Stateless
from operators.decode import Decoder

#: what each process runs: only names both this checkout and an older one have
_JOB = """
import itertools, json, sys, time
import operators.builtin
from core.envelope import LogRecord, Polled, encode_command
from dataflows.executor import PartitionPipeline
from dataflows.spec import load_pipeline
from deploy.broker import KafkaDistribution, LocalBroker
from deploy.memory import tune_collector
from examples.orders.generator import OrderGenerator

spec, batches, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
stream = OrderGenerator(seed=1, step_ms=5)
polls = []
for b in range(batches):
    commands = itertools.islice(stream, size)
    records = [
        LogRecord(0, b * size + n, c.ts, c.aggregate_id.encode(), encode_command(c))
        for n, c in enumerate(commands)
    ]
    polls.append(Polled(0, records, records[-1].offset + 1))
pipeline = PartitionPipeline(load_pipeline(spec))
tune_collector()
cpu = time.process_time()
for poll in polls:
    pipeline.run(poll)
cpu = time.process_time() - cpu
print(json.dumps({"commands": batches * size, "us_per_command": cpu / (batches * size) * 1e6}))
"""


def steps(rounds: int, size: int) -> dict[str, tuple[float, float]]:
    """Per step, (per-record, batch) µs per command: the fastest of `rounds`."""
    commands = list(itertools.islice(OrderGenerator(seed=1, step_ms=5), size))
    records = [
        LogRecord(0, n, c.ts, c.aggregate_id.encode(), encode_command(c))
        for n, c in enumerate(commands)
    ]
    pipeline = load_pipeline(REPO / ORDERS_SPEC)
    decoder = Decoder(pipeline.spec.source.max_record_bytes)
    envelopes, _ = decoder.batch(records)
    # each step over what reaches it: the shared filters' output for a projection's steps
    accepted = PartitionPipeline(pipeline)._steps(pipeline.filters, envelopes, defaultdict(_Tally))
    cases: dict[str, tuple[Any, Any]] = {
        "decode": (lambda: [decoder(r) for r in records], lambda: decoder.batch(records))
    }
    for step in [*pipeline.filters, *(s for p in pipeline.projections for s in p.steps)]:
        if isinstance(step, Stateless) and type(step).apply_batch is not Stateless.apply_batch:
            items = envelopes if step in pipeline.filters else accepted
            apply = step.apply
            cases[step.step_id] = (
                lambda apply=apply, items=items: [apply(e) for e in items],
                lambda step=step, items=items: step.apply_batch(items),
            )
    tune_collector()
    best: dict[str, list[float]] = {name: [float("inf")] * 2 for name in cases}
    for _ in range(rounds):
        for name, paths in cases.items():
            for i, path in enumerate(paths):
                n = len(records if name == "decode" else envelopes)
                cpu = time.process_time()
                path()
                best[name][i] = min(best[name][i], (time.process_time() - cpu) / n * 1e6)
    for name, (each, batch) in best.items():
        print(
            f"{name}: per record {each:.3f} µs/cmd, batch {batch:.3f} µs/cmd "
            f"({batch / each:.2f}x, {each - batch:+.3f} µs)"
        )
    return {name: (each, batch) for name, (each, batch) in best.items()}


def end_to_end(against: Path, commands: int, rounds: int) -> dict[str, list[dict[str, Any]]]:
    """Scenario 2 for both checkouts and the bare loop, `rounds` times, the checkouts' order
    swapped every round, so neither is always the first to read the log after the fill."""
    WORK.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(WORK / "executor-broker", ignore_errors=True)
    broker = LocalBroker(WORK / "executor-broker", KafkaDistribution(REPO / ".cache"))
    brokers = broker.start().bootstrap
    jobs = [("this checkout", REPO, "ours"), (str(against), against.resolve(), "ours")]
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in jobs}
    results["bare loop"] = []
    try:
        fill(brokers, "executor6", 6, commands)
        args = {"brokers": brokers, "topic": "executor6", "spec": ORDERS_SPEC}
        for n in range(rounds):
            order = jobs if n % 2 == 0 else jobs[::-1]
            for name, checkout, kind in [*order, ("bare loop", REPO, "bare")]:
                results[name].append(memory.run(checkout, f"executor-{kind}", kind, args))
    finally:
        broker.stop()
    for n in range(rounds):
        bare = results["bare loop"][n]["commands_per_s"]
        for name, runs in results.items():
            r = runs[n]
            print(
                f"round {n + 1} {name}: {r['commands_per_s']:,.0f} cmd/s, "
                f"{r['cpu_us_per_command']:.1f} µs CPU/cmd ({r['commands_per_s'] / bare:.2f}x "
                "the bare loop)" + _collector(r)
            )
    return results


def _collector(figures: dict[str, Any]) -> str:
    if "collector_s" not in figures:  # a checkout from before the figure
        return ""
    young, middle, full = figures["collections"]
    return f"; {figures['collector_s']} s in the collector ({young}, {middle}, {full} runs)"


def run(checkout: Path, batches: int, size: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(checkout), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _JOB, ORDERS_SPEC, str(batches), str(size)],
        capture_output=True, text=True, env=env, cwd=checkout, timeout=1800,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{checkout} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(against: Path | None, rounds: int, batches: int, size: int) -> dict[str, list[float]]:
    checkouts = {"this checkout": REPO}
    if against is not None:
        checkouts[str(against)] = against.resolve()
    figures: dict[str, list[float]] = {name: [] for name in checkouts}
    for n in range(rounds):
        for name, checkout in checkouts.items():
            log(f"round {n + 1}/{rounds}: {name} …")
            figures[name].append(run(checkout, batches, size)["us_per_command"])
    for name, runs in figures.items():
        each = ", ".join(f"{us:.2f}" for us in runs)
        print(f"{name}: median {statistics.median(runs):.2f} µs/cmd (rounds: {each})")
    if against is not None:
        ours, theirs = figures["this checkout"], figures[str(against)]
        ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
        each = ", ".join(f"{r:.2f}" for r in ratios)
        print(f"ratio this/against: median {statistics.median(ratios):.2f}x (rounds: {each})")
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.executor")
    parser.add_argument("--against", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--steps", action="store_true")
    parser.add_argument("--end-to-end", type=int, metavar="COMMANDS")
    a = parser.parse_args()
    if a.end_to_end:
        if a.against is None:
            parser.error("--end-to-end needs --against DIR (the checkout to compare with)")
        end_to_end(a.against, a.end_to_end, a.rounds)
    elif a.steps:
        steps(a.rounds, a.batch_size)
    else:
        main(a.against, a.rounds, a.batches, a.batch_size)
