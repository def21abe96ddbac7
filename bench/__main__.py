"""`make bench`: every scenario on a real broker and the embedded ClickHouse engine, each
figure beside its baseline measured in the same run; a table on screen, the figures with the
machine's details in `bench/results/<time>.json`, and the table in BENCHMARKS.md.

    python -m bench [--commands N] [--memory-commands N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import edge
from commands.log import CommandLog
from deploy.broker import KafkaDistribution, LocalBroker

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".cache" / "bench-work"
QUIX_PYTHON = REPO / ".cache" / "bench-quix" / "bin" / "python"
#: the orders example's v1 spec, relative to the repository (the workers run from there)
ORDERS_SPEC = "examples/orders/specs/orders.yaml"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def job(kind: str, name: str, **args: Any) -> dict[str, Any]:
    """Run one job in a fresh process with a store of its own; its figures."""
    work = WORK / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    python = (
        [str(QUIX_PYTHON), "-m", "bench.quix_peer"]
        if kind == "quix"
        else [sys.executable, "-m", "bench.worker", kind]
    )
    log(f"{name} …")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [*python, json.dumps({**args, "work": str(work)})],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    log(f"{name}: {result.get('commands_per_s', result.get('p99_s'))}")
    return result


def fill(brokers: str, topic: str, partitions: int, count: int) -> None:
    with CommandLog(brokers, topic) as command_log:
        command_log.ensure(partitions)
    shares = min(2, partitions)
    log(f"producing {count:,} commands into {topic} ({partitions} partitions)")
    producers = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.produce", brokers, topic, str(count), "1"]
            + [str(n) for n in (share, shares, partitions)],
            cwd=REPO,
        )
        for share in range(shares)
    ]
    for p in producers:
        if p.wait() != 0:
            raise RuntimeError(f"producing into {topic} failed")


def machine() -> dict[str, Any]:
    import psutil

    cpu = platform.processor() or ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        models = [
            line for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        cpu = models[0].split(":", 1)[1].strip() if models else cpu
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
    }


def main(commands: int, memory_commands: int) -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    broker = LocalBroker(WORK / "broker", KafkaDistribution(REPO / ".cache"))
    brokers = broker.start().bootstrap
    started = time.monotonic()
    results: dict[str, Any] = {"machine": machine(), "commands": commands}
    rows: list[tuple[str, str, str, str, str]] = []
    try:
        fill(brokers, "orders6", 6, commands)
        fill(brokers, "orders1", 1, commands)
        fill(brokers, "memory6", 6, memory_commands)
        common = {"brokers": brokers}
        s: dict[str, Any] = {}
        for topic in ("orders6", "orders1"):
            s[f"s1_ours_{topic}"] = job(
                "ours", f"s1-ours-{topic}", topic=topic, spec="bench/decode_only.yaml", **common
            )
            s[f"s1_bare_{topic}"] = job(
                "bare", f"s1-bare-{topic}", topic=topic, decode_only=True, **common
            )
            s[f"s2_ours_{topic}"] = job(
                "ours",
                f"s2-ours-{topic}",
                topic=topic,
                spec=ORDERS_SPEC,
                **common,
            )
            s[f"s2_bare_{topic}"] = job(
                "bare",
                f"s2-bare-{topic}",
                topic=topic,
                batch_rows=s[f"s2_ours_{topic}"]["rows_per_insert_by_table"],
                **common,
            )
        s["s2_bytewax_kafka"] = job(
            "bytewax_kafka",
            "s2-bytewax-kafka",
            topic="orders6",
            spec=ORDERS_SPEC,
            **common,
        )
        s["s2_clickhouse_parses"] = job(
            "clickhouse_parses", "s2-clickhouse-parses", topic="orders6", **common
        )
        if QUIX_PYTHON.exists():
            s["s2_quix"] = job("quix", "s2-quix", topic="orders6", total=commands, **common)
        rate = round(0.2 * s["s2_ours_orders6"]["commands_per_s"])
        s["s3_latency"] = job(
            "latency",
            "s3-latency",
            topic="latency6",
            spec=ORDERS_SPEC,
            rate=rate,
            seconds=60,
            **common,
        )
        s["s4_replay"] = replay(brokers)
        s["s5_memory"] = job("ours", "s5-memory", topic="memory6", spec=ORDERS_SPEC, **common)
        s["s6_two_processes"] = two_processes(brokers)
        s["s7_edge"] = edge.run(brokers, WORK / "s7-edge")
        from bench import cluster  # scenario 8 imports this module's helpers

        s["s8_cluster"] = cluster.scenario(brokers, "orders6")
        results["scenarios"] = s
    finally:
        broker.stop()
    results["minutes"] = round((time.monotonic() - started) / 60, 1)
    rows = table(results)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = REPO / "bench" / "results" / f"{stamp}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    write_benchmarks(rows, results, out.name)
    print(render(rows))
    log(f"done in {results['minutes']} min; {out.relative_to(REPO)} and BENCHMARKS.md written")


def replay(brokers: str) -> dict[str, Any]:
    """Scenario 4 through the user's path: `cqrs replay … --from earliest --into …`."""
    data = WORK / "s4-replay"
    shutil.rmtree(data, ignore_errors=True)
    env = {
        **os.environ,
        "CQRS_BROKERS": brokers,
        "CQRS_DATA_DIR": str(data),
        "CQRS_TOPIC": "orders6",
        "CQRS_HTTP_PORT": "0",
    }
    log("s4-replay …")
    cqrs = str(Path(sys.executable).with_name("cqrs"))
    started = time.perf_counter()
    done = subprocess.run(
        [
            cqrs,
            "--log-level",
            "WARNING",
            "replay",
            ORDERS_SPEC,
            "--from",
            "earliest",
            "--into",
            "orders_rebuilt",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=1800,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0 or "completed" not in done.stderr:
        raise RuntimeError(f"replay failed:\n{done.stderr[-3000:]}")
    with CommandLog(brokers, "orders6") as command_log:
        total = sum(command_log.end_offsets().values())
    log(f"s4-replay: {total / seconds:,.0f}")
    return {
        "commands": total,
        "seconds": round(seconds, 2),
        "commands_per_s": round(total / seconds),
    }


def two_processes(brokers: str) -> dict[str, Any]:
    """Scenario 6: the same deployment split over two processes by partition. Each has a store
    of its own: chDB allows one process per store, so this is how two processes share work
    when ClickHouse is a server they both write to."""
    log("s6-two-processes …")
    halves = [[0, 1, 2], [3, 4, 5]]
    work = [WORK / f"s6-half-{i}" for i in range(2)]
    started = time.perf_counter()
    procs = []
    for half, w in zip(halves, work, strict=True):
        shutil.rmtree(w, ignore_errors=True)
        w.mkdir(parents=True)
        args = {
            "brokers": brokers,
            "topic": "orders6",
            "spec": ORDERS_SPEC,
            "partitions": half,
            "work": str(w),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "bench.worker", "ours", json.dumps(args)],
                stdout=subprocess.PIPE,
                text=True,
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
        )
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    seconds = time.perf_counter() - started
    total = sum(o["commands"] for o in outs)
    log(f"s6-two-processes: {total / seconds:,.0f}")
    return {
        "commands": total,
        "seconds": round(seconds, 2),
        "commands_per_s": round(total / seconds),
        "processes": outs,
    }


#: issue 17's targets, by row: (at least or at most, the ratio)
TARGETS = {
    "s2": (">=", 0.8),
    "quix": (">=", 2.0),
    "clickhouse": (">=", 0.5),
    "replay": ("<=", 1.4),
}
P99_TARGET_S = 0.5
RSS_TARGET_MB = 450


def verdict(ratio: float, target: tuple[str, float] | None, what: str = "") -> str:
    """The ratio's cell, with its target and whether this run met it."""
    if target is None:
        return f"{ratio:.2f}x{what}"
    sign, bound = target
    met = ratio >= bound if sign == ">=" else ratio <= bound
    bound_text = f"{'≥' if sign == '>=' else '≤'} {bound}x"
    return f"{ratio:.2f}x{what} (target {bound_text}: {'yes' if met else 'no'})"


def table(results: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    s = results["scenarios"]
    n = f"{results['commands']:,}"
    rows = []

    def add(
        scenario: str,
        ours: float,
        base: float,
        base_name: str,
        ours_note: str = "",
        base_note: str = "",
        target: tuple[str, float] | None = None,
    ) -> None:
        """A throughput row; the notes follow the figures in brackets."""
        ratio = ours / base if base else float("nan")
        rows.append(
            (
                scenario,
                f"{ours:,.0f} cmd/s" + (f" ({ours_note})" if ours_note else ""),
                f"{base_name}: {base:,.0f} cmd/s" + (f" ({base_note})" if base_note else ""),
                verdict(ratio, target),
                "make bench",
            )
        )

    for topic, parts in (("orders6", 6), ("orders1", 1)):
        for scenario, what in (
            ("s1", "1. decode only, null sink"),
            ("s2", "2. orders v1, earliest to caught up"),
        ):
            ours, bare = s[f"{scenario}_ours_{topic}"], s[f"{scenario}_bare_{topic}"]
            add(
                f"{what} ({n}, {parts} partitions)",
                ours["commands_per_s"],
                bare["commands_per_s"],
                "bare loop",
                f"{ours['cpu_us_per_command']} µs CPU/cmd, "
                f"{ours['rows_per_insert']:,} rows/insert, {ours['peak_rss_mb']} MB",
                f"{bare['cpu_us_per_command']:.1f} µs CPU/cmd",
                TARGETS.get(scenario),
            )
    ours6 = s["s2_ours_orders6"]["commands_per_s"]
    add(
        "2. orders v1 vs Bytewax's Kafka connector (confluent-kafka)",
        ours6,
        s["s2_bytewax_kafka"]["commands_per_s"],
        "same pipeline, KafkaSource",
    )
    add(
        "2. orders v1 vs ClickHouse parsing the JSON",
        ours6,
        s["s2_clickhouse_parses"]["commands_per_s"],
        "raw values, INSERT FORMAT JSONEachRow",
        target=TARGETS["clickhouse"],
    )
    if "s2_quix" in s:
        add(
            "2. orders v1 vs Quix Streams",
            ours6,
            s["s2_quix"]["commands_per_s"],
            "Quix Streams",
            target=TARGETS["quix"],
        )
    lat = s["s3_latency"]
    rows.append(
        (
            f"3. latency at {lat['achieved_rate']:,} cmd/s (20% of scenario 2)",
            f"p50 {lat['p50_s']} s, p99 {lat['p99_s']} s, max {lat['max_s']} s",
            f"target: p99 <= {P99_TARGET_S} s",
            "yes" if lat["p99_s"] <= P99_TARGET_S else "no",
            "make bench",
        )
    )
    bare_s = s["s2_bare_orders6"]["seconds"]
    rows.append(
        (
            f"4. replay {n} into a new database (`cqrs replay`)",
            f"{s['s4_replay']['seconds']:.0f} s ({s['s4_replay']['commands_per_s']:,} cmd/s)",
            f"bare loop: {bare_s:.0f} s",
            verdict(s["s4_replay"]["seconds"] / bare_s, TARGETS["replay"], " the time"),
            "make bench",
        )
    )
    mem = s["s5_memory"]
    over_time = ", ".join(str(mb) for _, mb in mem["rss_mb_over_time"])
    rows.append(
        (
            f"5. peak RSS over {mem['commands']:,} commands",
            f"{mem['peak_rss_mb']} MB (RSS over time: {over_time} MB)",
            f"target: <= {RSS_TARGET_MB} MB, flat",
            "yes" if mem["peak_rss_mb"] <= RSS_TARGET_MB else "no",
            "make bench",
        )
    )
    add(
        "6. two processes (3 partitions each) vs one",
        s["s6_two_processes"]["commands_per_s"],
        ours6,
        "one process",
    )
    rows += edge.rows(s["s7_edge"])
    if "s8_cluster" in s:
        from bench import cluster

        rows += cluster.rows(s["s8_cluster"])
    return rows


def render(rows: list[tuple[str, str, str, str, str]]) -> str:
    lines = ["| scenario | ours | baseline | ratio | command |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {' | '.join(r)} |" for r in rows]
    return "\n".join(lines)


def write_benchmarks(
    rows: list[tuple[str, str, str, str, str]], results: dict[str, Any], source: str
) -> None:
    path = REPO / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else ""
    start, end = "<!-- results -->", "<!-- /results -->"
    m = results["machine"]
    block = (
        f"{start}\n_Last run: `bench/results/{source}`, {m['cpus']} x {m['cpu']}, "
        f"{m['memory_gb']} GB, Python {m['python']}, {results['minutes']} min._\n\n"
        f"{render(rows)}\n{end}"
    )
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text + "\n" + block + "\n"
    path.write_text(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--commands", type=int, default=1_000_000)
    parser.add_argument("--memory-commands", type=int, default=5_000_000)
    a = parser.parse_args()
    main(a.commands, a.memory_commands)
