"""Where scenario 2's time goes, end to end: py-spy over the pipeline (`ours`) and the bare loop on
one broker and topic, each sample put in one bucket by the innermost frame that names one.

    python -m bench.profile [--commands N] [--partitions N] [--against DIR] [--rate HZ] [--keep DIR]
    python -m bench.profile --again [--keep DIR]

`--again` reports a kept run once more (its raw files and figures, after a change to the
buckets).

Every job (the pipeline of this checkout, of `--against` if given, and the bare loop) runs under
`py-spy record --subprocesses --nonblocking -f raw`. py-spy's own idle filter lets through
threads blocked in `epoll` or a `Condition`, so samples whose innermost frame waits count as
"idle" here and are left out, as are the startup's (imports, the engine's start), which the
job's clock excludes. A bucket's µs per command is its share of the other samples times the
job's CPU per command (measured by the job itself, in the same run): an estimate, since the
engine's native threads use CPU that no Python frame shows, and are spread over the buckets.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.__main__ import ORDERS_SPEC, REPO, WORK, fill, log
from deploy.broker import KafkaDistribution, LocalBroker

#: (bucket, a fragment of "function (file:line)"), tried on the innermost frame alone: time in
#: native code called from these frames' own lines
INNERMOST: list[tuple[str, str]] = [
    ("idle", "select (selectors.py"),
    ("idle", "wait (threading.py"),
    ("bytewax: its Rust loop (no Python frame above the run)", "Deployment.run (deploy/"),
    ("freeing a batch (on_batch's own line, after run returns)", "on_batch (dataflows/builder.py"),
]
#: (bucket, a fragment of "function (file:line)"): the first bucket a frame of the stack matches
BUCKETS: list[tuple[str, str]] = [
    # before the job's clock starts (imports, the engine's start, the tables): not per command
    ("startup", "_find_and_load"),
    ("startup", "ChdbClient.__init__"),
    # the engine's start and the page-out of its library (`sinks.store._trim_library`): once
    ("startup", "_start_engine (sinks/store.py"),
    ("startup", "Deployment.prepare"),
    ("startup", "load_pipeline"),
    ("insert: progress rows (sinks/progress.py)", "record_progress"),
    ("gc", "(gc)"),
    ("insert: chDB", "chdb/"),
    ("insert: serialisation", "clickhouse_connect/"),
    ("sinks (own)", "sinks/"),
    ("metrics", "prometheus_client/"),
    ("metrics", "dataflows/metrics.py"),
    ("metrics", "Recorder."),
    ("kafka-python: fetch/parse", "kafka/"),
    ("snapshots: the pipeline's state (each epoch)", "PartitionPipeline.snapshot"),
    ("source: LogRecord building", "dataflows/source.py"),
    ("executor: dedupe", "operators/dedupe.py"),
    ("executor: order_state", "order_state"),
    ("executor: window", "operators/window"),
    ("executor: decode", "operators/decode.py"),
    ("executor: decode", "core/envelope.py"),
    ("executor: other filters", "operators/"),
    ("executor: other filters", "examples/"),
    ("executor: own loop", "dataflows/executor.py"),
    ("bare loop: fold/rows", "bench/bare_loop.py"),
    ("bytewax", "bytewax/"),
    ("deploy", "deploy/"),
]


def bucket(stack: str) -> str:
    frames = stack.split(";")
    if len(frames) == 1:  # the process alone: a thread with no Python frame
        return "native threads (no Python frame)"
    for name, fragment in INNERMOST:
        if fragment in frames[-1]:
            return name
    for name, fragment in BUCKETS:
        if any(fragment in frame for frame in frames[1:]):
            return name
    return "other: " + frames[-1][:80]


def profile(
    name: str, checkout: Path, kind: str, args: dict[str, Any], rate: int, keep: Path
) -> dict[str, Any]:
    """One job of `checkout` under py-spy; its figures and its samples by bucket."""
    work = WORK / f"profile-{name}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    raw = keep / f"{name}.raw"
    env = {**os.environ, "PYTHONPATH": str(checkout), "PYTHONDONTWRITEBYTECODE": "1"}
    spy = Path(sys.executable).with_name("py-spy")
    log(f"{name} under py-spy …")
    done = subprocess.run(
        [str(spy), "record", "--subprocesses", "--nonblocking", "-r", str(rate), "-f", "raw",
         "-o", str(raw),
         "--", sys.executable, "-m", "bench.worker", kind,
         json.dumps({**args, "work": str(work)})],
        capture_output=True, text=True, env=env, cwd=checkout, timeout=3600,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
    # py-spy writes its own lines to stdout too: the job's figures are its JSON line
    figures = json.loads([x for x in done.stdout.splitlines() if x.startswith("{")][-1])
    return {"figures": figures, "raw": str(raw)}


def samples(raw: Path) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        counts[bucket(stack)] += int(count)
    return dict(counts)


def report(name: str, result: dict[str, Any]) -> None:
    figures, counts = result["figures"], samples(Path(result["raw"]))
    cpu_us = figures["cpu_us_per_command"]
    idle, startup = counts.pop("idle", 0), counts.pop("startup", 0)
    busy = sum(counts.values())
    print(
        f"{name}: {figures['commands_per_s']:,.0f} cmd/s, {cpu_us:.1f} µs CPU/cmd under py-spy "
        f"({busy:,} busy samples; {idle:,} idle and {startup:,} of startup left out)"
    )
    for bucket_name, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        if n / busy >= 0.001:
            print(f"  {bucket_name}: {n / busy * cpu_us:.2f} µs/cmd ({n / busy:.1%})")


def main(
    commands: int, partitions: int, against: Path | None, rate: int, keep: Path
) -> dict[str, Any]:
    WORK.mkdir(parents=True, exist_ok=True)
    keep = keep.resolve()  # py-spy runs from each checkout's directory
    keep.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(WORK / "profile-broker", ignore_errors=True)
    broker = LocalBroker(WORK / "profile-broker", KafkaDistribution(REPO / ".cache"))
    brokers = broker.start().bootstrap
    results = {}
    try:
        topic = f"profile{partitions}"
        fill(brokers, topic, partitions, commands)
        args = {"brokers": brokers, "topic": topic, "spec": ORDERS_SPEC}
        jobs = [("this checkout", REPO, "ours"), ("bare loop", REPO, "bare")]
        if against is not None:
            jobs.insert(1, (str(against), against.resolve(), "ours"))
        for n, (name, checkout, kind) in enumerate(jobs):
            results[name] = profile(f"job{n}-{kind}", checkout, kind, args, rate, keep)
    finally:
        broker.stop()
    (keep / "results.json").write_text(json.dumps(results))
    for name, result in results.items():
        report(name, result)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--commands", type=int, default=300_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--against", type=Path)
    parser.add_argument("--again", action="store_true")
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--keep", type=Path, default=WORK / "profile")
    a = parser.parse_args()
    if a.again:
        for name, result in json.loads((a.keep / "results.json").read_text()).items():
            report(name, result)
    else:
        main(a.commands, a.partitions, a.against, a.rate, a.keep)
