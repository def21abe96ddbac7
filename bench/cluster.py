"""Scenario 7: a deployment as a cluster of processes on one machine, on the embedded default,
through the user's path (`cqrs replay … --processes N`): one process and two, back to back on
the same topic, beside the bare loop over it, with the peak RSS of every process of each run.

    python -m bench.cluster [--commands N] [--profile]   (alone: a broker and a topic of its own)

`--profile` runs the two-process replay once more under `py-spy record --subprocesses` and
writes its collapsed stacks to `bench/results/cluster-profile-<time>.txt` (where the time goes,
per process; see BENCHMARKS.md).

`make bench` runs it after the other scenarios, on their broker and topic (`cluster`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from bench.__main__ import ORDERS_SPEC, REPO, WORK, fill, job, log
from commands.log import CommandLog
from deploy.broker import KafkaDistribution, LocalBroker


def replay(brokers: str, topic: str, processes: int, profile: Path | None = None) -> dict[str, Any]:
    """`cqrs replay --from earliest` into a new data dir, timed, with each process's peak RSS
    (the runtime's, then its children's, sampled every half second); with `profile`, under
    py-spy (the figures then include its cost)."""
    data = WORK / f"s8-replay-{processes}{'-profiled' if profile else ''}"
    shutil.rmtree(data, ignore_errors=True)
    env = {**os.environ, "CQRS_BROKERS": brokers, "CQRS_DATA_DIR": str(data),
           "CQRS_TOPIC": topic, "CQRS_HTTP_PORT": "0"}  # fmt: skip
    cqrs = str(Path(sys.executable).with_name("cqrs"))
    log(f"s8-replay on {processes} process(es) …")
    started = time.perf_counter()
    spy = (
        [str(Path(sys.executable).with_name("py-spy")), "record", "--subprocesses", "--rate",
         "50", "--format", "raw", "--output", str(profile), "--"]
        if profile else []
    )  # fmt: skip
    run = subprocess.Popen(
        [*spy, cqrs, "--log-level", "WARNING", "replay", ORDERS_SPEC, "--from", "earliest",
         "--processes", str(processes)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    peaks: dict[int, int] = {}
    runtime = psutil.Process(run.pid)
    while run.poll() is None:
        try:
            for p in [runtime, *runtime.children(recursive=True)]:
                peaks[p.pid] = max(peaks.get(p.pid, 0), p.memory_info().rss)
        except psutil.Error:
            pass  # a process ended between the listing and the sample
        time.sleep(0.5)
    seconds = time.perf_counter() - started
    err = run.stderr.read() if run.stderr is not None else ""
    if run.returncode != 0 or "completed" not in err:
        raise RuntimeError(f"replay on {processes} processes failed:\n{err[-3000:]}")
    with CommandLog(brokers, topic) as command_log:
        total = sum(command_log.end_offsets().values())
    log(f"s8-replay on {processes}: {total / seconds:,.0f} cmd/s")
    by_process = [round(rss / 2**20) for _, rss in sorted(peaks.items())]
    return {
        "processes": processes,
        "commands": total,
        "seconds": round(seconds, 2),
        "commands_per_s": round(total / seconds),
        # the runtime (process 0) first: it has the lowest pid of the run
        "peak_rss_mb_per_process": by_process,
    }


def scenario(brokers: str, topic: str) -> dict[str, Any]:
    """One process, two, and the bare loop, side by side on one topic."""
    one = replay(brokers, topic, 1)
    two = replay(brokers, topic, 2)
    bare = job("bare", "s8-bare", topic=topic, brokers=brokers)
    return {
        "one": one,
        "two": two,
        "bare": bare,
        "speedup": round(two["commands_per_s"] / one["commands_per_s"], 2),
        "two_vs_bare_time": round(two["seconds"] / bare["seconds"], 2),
        "load_average": os.getloadavg(),
    }


def rows(s: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """Scenario 7's rows of the BENCHMARKS.md table."""
    one, two, bare = s["one"], s["two"], s["bare"]
    rss = " + ".join(str(mb) for mb in two["peak_rss_mb_per_process"])
    return [
        (
            f"7. orders v1 on 2 processes x 1 worker vs 1 (`cqrs replay --processes 2`, "
            f"{two['commands']:,})",
            f"{two['commands_per_s']:,} cmd/s (peak RSS {rss} MB)",
            f"1 process: {one['commands_per_s']:,} cmd/s ({one['peak_rss_mb_per_process'][0]} MB)",
            f"{s['speedup']:.2f}x (target >= 1.4x)",
            "python -m bench.cluster",
        ),
        (
            f"7. replay of {two['commands']:,} on 2 processes",
            f"{two['seconds']:.0f} s",
            f"bare loop: {bare['seconds']:.0f} s",
            f"{s['two_vs_bare_time']:.2f}x the time (target <= 1.3x)",
            "python -m bench.cluster",
        ),
    ]


def main(commands: int, profile: bool) -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    broker = LocalBroker(WORK / "broker", KafkaDistribution(REPO / ".cache"))
    brokers = broker.start().bootstrap
    try:
        fill(brokers, "cluster6", 6, commands)
        found = scenario(brokers, "cluster6")
        if profile:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            spied = REPO / "bench" / "results" / f"cluster-profile-{stamp}.txt"
            found["profiled"] = replay(brokers, "cluster6", 2, spied)
    finally:
        broker.stop()
    out = (
        REPO
        / "bench"
        / "results"
        / f"cluster-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    )
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(found, indent=2))
    for row in rows(found):
        print(f"| {' | '.join(row)} |")
    log(f"{out.relative_to(REPO)} written")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.cluster")
    parser.add_argument("--commands", type=int, default=1_000_000)
    parser.add_argument("--profile", action="store_true", help="also a run under py-spy")
    a = parser.parse_args()
    main(a.commands, a.profile)
