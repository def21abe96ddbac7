"""The edge under load: wrk (Debian's, `bench/edge.lua` builds every body with fresh command
ids) against real `cqrs edge` processes, beside kafka-python's producer sending the same
commands to the same broker; then the log is read back and must hold exactly the commands the
edge answered 202 for (plus, at most, those of requests wrk sent but stopped waiting for).

    python -m bench.edge [--seconds S] [--replicas N ...] [--profile]

On a broker of its own; the figures go to `bench/results/edge-<time>.json` and the table to the
screen. `make bench` runs `run()` on its broker, and its table gets these rows.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
from kafka import KafkaConsumer, TopicPartition

from commands.load import produce_load
from commands.log import CommandLog
from commands.producer import CommandProducer
from commands.schemas import check_command
from core.envelope import Command, encode_command
from examples.orders.generator import OrderGenerator
from examples.orders.schemas import SCHEMAS

REPO = Path(__file__).resolve().parents[1]
CQRS = Path(sys.executable).with_name("cqrs")
LUA = REPO / "bench" / "edge.lua"
CONNECTIONS = 64
BATCH = 100
TEMPLATES = 10_000
TOKEN = "bench-edge-token-0123456789abcdef"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def valid_commands(count: int) -> list[Command]:
    """The demo's orders, only those the edge's check passes (the load is of valid commands)."""
    now = int(time.time() * 1000)
    commands = OrderGenerator(seed=15, start_ms=now - count).__iter__()
    return [
        c
        for c in itertools.islice(commands, count)
        if check_command(SCHEMAS, c, c.aggregate_id.encode(), now, 3_600_000) is None
    ]


def write_tails(commands: list[Command], path: Path) -> None:
    """Each command's JSON after its id (`,"type":…}`): the Lua script puts a fresh id before
    it. The envelope encodes `id` first."""
    with path.open("wb") as f:
        for c in commands:
            encoded = msgspec.json.encode(c)
            head = b'{"id":' + msgspec.json.encode(c.id)
            assert encoded.startswith(head), encoded[:80]
            f.write(encoded[len(head) :] + b"\n")


class Edges:
    """`replicas` real `cqrs edge` processes sharing one port (`--reuse-port`: Linux spreads
    the connections over them), each with its own producer and answer cache."""

    def __init__(self, brokers: str, topic: str, work: Path, replicas: int) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        env = {**os.environ, "CQRS_BROKERS": brokers, "CQRS_TOPIC": topic,
               "CQRS_TOKEN": TOKEN, "CQRS_DATA_DIR": str(work)}  # fmt: skip
        work.mkdir(parents=True)
        port = 0
        for n in range(replicas):
            sink = work / f"edge-{n}.log"
            with sink.open("w") as f:
                self.procs.append(
                    subprocess.Popen(
                        [str(CQRS), "--log-level", "WARNING", "edge", "--port", str(port),
                         "--reuse-port", "--rate-limit", "1000000",
                         "--schemas", "examples.orders.schemas:SCHEMAS"],
                        env=env, stdout=subprocess.DEVNULL, stderr=f, cwd=REPO,
                    )
                )  # fmt: skip
            deadline = time.monotonic() + 120
            while not (found := re.search(r"^edge on (\S+)", sink.read_text(), re.M)):
                if self.procs[-1].poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the edge did not start: {sink.read_text()[-2000:]}")
                time.sleep(0.05)
            self.url = found.group(1)
            port = int(self.url.rsplit(":", 1)[1])

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self) -> list[int]:
        """SIGTERM (each flushes what it accepted and exits 0); the exit statuses."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = []
        for p in self.procs:
            try:
                codes.append(p.wait(60))
            except subprocess.TimeoutExpired:
                p.kill()
                codes.append(p.wait())
        return codes


def wrk(url: str, run: str, batch: int, seconds: float, work: Path, tails: Path) -> dict[str, Any]:
    """One wrk run of `seconds`; its figures and the ids it was answered 202 for."""
    out = work / run
    out.mkdir(parents=True)
    env = {**os.environ, "EDGE_TEMPLATES": str(tails), "EDGE_BATCH": str(batch),
           "EDGE_RUN": run, "EDGE_TOKEN": TOKEN, "EDGE_OUT": str(out)}  # fmt: skip
    done = subprocess.run(
        ["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{seconds:.0f}s", "--timeout", "10s",
         "-s", str(LUA), f"{url}/commands"],
        env=env, capture_output=True, text=True, timeout=seconds + 120,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr[-2000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    accepted: list[str] = []
    for ids in out.glob("*.ids"):
        accepted += ids.read_text().split()
    seconds_run = figures["duration_us"] / 1e6
    figures.update(
        run=run,
        batch=batch,
        connections=CONNECTIONS,
        accepted=accepted,
        requests_per_s=round(figures["requests"] / seconds_run),
        commands_accepted_per_s=round(len(accepted) / seconds_run),
        p50_ms=round(figures["p50_us"] / 1000, 1),
        p99_ms=round(figures["p99_us"] / 1000, 1),
    )
    log(
        f"edge {run}: {figures['commands_accepted_per_s']:,} commands/s accepted, "
        f"{figures['requests_per_s']:,} requests/s, p50 {figures['p50_ms']} ms, "
        f"p99 {figures['p99_ms']} ms, statuses {figures['statuses']}"
    )
    return figures


def baseline(brokers: str, topic: str, commands: list[Command], seconds: float) -> dict[str, Any]:
    """kafka-python's producer as `cqrs produce` drives it: the same commands, fresh ids."""
    fresh = (
        msgspec.structs.replace(c, id=f"base-{n}") for n, c in enumerate(itertools.cycle(commands))
    )
    with CommandProducer(brokers, topic) as producer:
        stats = produce_load(producer, fresh, duration_s=seconds)
    rate = round(stats.acked / stats.elapsed_s)
    log(f"kafka-python producer: {rate:,} commands/s acknowledged ({stats.errors} errors)")
    return {"commands": stats.acked, "errors": stats.errors, "seconds": round(stats.elapsed_s, 2),
            "commands_per_s": rate}  # fmt: skip


def librdkafka(brokers: str, topic: str, commands: list[Command], seconds: float) -> dict:
    """What a C client would give the edge: confluent-kafka's producer (librdkafka, its own
    threads, no GIL), the same settings, the same commands, fresh ids."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": brokers, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 10, "queue.buffering.max.messages": 1_000_000})  # fmt: skip
    acked, errors = [0], [0]

    def delivered(error: object, _message: object) -> None:
        (errors if error else acked)[0] += 1

    started = time.monotonic()
    for n, c in enumerate(itertools.cycle(commands)):
        if n % 1000 == 0 and time.monotonic() - started >= seconds:
            break
        key = c.aggregate_id.encode()
        value = encode_command(msgspec.structs.replace(c, id=f"rd-{n}"))
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(60)
    elapsed = time.monotonic() - started
    rate = round(acked[0] / elapsed)
    log(f"confluent-kafka producer: {rate:,} commands/s acknowledged ({errors[0]} errors)")
    return {"commands": acked[0], "errors": errors[0], "seconds": round(elapsed, 2),
            "commands_per_s": rate}  # fmt: skip


def profile(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling one edge (all its threads) while wrk loads it."""
    py_spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(
        [str(py_spy), "record", "--pid", str(pid), "--duration", f"{seconds:.0f}",
         "--rate", "200", "--format", "raw", "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


#: where a sampled frame's code lives, by path fragment, first match wins
LAYERS = (
    ("kafka/", "kafka-python (send, sender thread)"),
    ("asyncio/", "asyncio (event loop, futures, self-pipe)"),
    ("selectors.py", "asyncio (event loop, futures, self-pipe)"),
    ("uvicorn/", "uvicorn + h11 (HTTP)"),
    ("h11/", "uvicorn + h11 (HTTP)"),
    ("litestar/", "Litestar (routing, middleware, rate limit)"),
    ("api/security.py", "the guard (api/security.py)"),
    ("prometheus_client/", "metrics"),
    ("api/edge", "the edge (api/edge.py)"),
    ("commands/edge.py", "parsing and checking (commands/edge.py, schemas)"),
    ("commands/schemas.py", "parsing and checking (commands/edge.py, schemas)"),
    ("msgspec", "parsing and checking (commands/edge.py, schemas)"),
    ("core/", "parsing and checking (commands/edge.py, schemas)"),
    ("commands/producer.py", "kafka-python (send, sender thread)"),
    ("threading.py", "threads (locks, waits)"),
)


def top_frames(spy: subprocess.Popen[bytes], out: Path, top: int = 12) -> dict[str, Any]:
    """Where the edge's CPU went: the share of samples by thread, by layer (the code running
    when sampled), and the functions most often running."""
    spy.wait(120)
    samples = 0
    threads: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        n = int(count)
        samples += n
        threads["kafka-python sender" if "Sender.run" in stack else "event loop"] += n
        leaf = frames[-1]
        layers[next((name for part, name in LAYERS if part in leaf), "other")] += n
        functions[leaf] += n

    def shares(counter: Counter[str], most: int | None = None) -> dict[str, float]:
        return {k: round(v / samples, 3) for k, v in counter.most_common(most)}

    return {
        "samples": samples,
        "threads": shares(threads),
        "layers": shares(layers),
        "functions": shares(functions, top),
    }


def logged_ids(brokers: str, topic: str) -> Counter[str]:
    """How often each command id is in the topic, read from the first offset to its end."""
    with CommandLog(brokers, topic) as command_log:
        stop = command_log.end_offsets()
    consumer = KafkaConsumer(bootstrap_servers=brokers, enable_auto_commit=False,
                             max_poll_records=10_000)  # fmt: skip
    tps = [TopicPartition(topic, p) for p in stop]
    consumer.assign(tps)
    consumer.seek_to_beginning()
    ids: Counter[str] = Counter()
    deadline = time.monotonic() + 600
    while any(consumer.position(tp) < stop[tp.partition] for tp in tps):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{topic} could not be read in 600 s")
        for records in consumer.poll(timeout_ms=500).values():
            ids.update(msgspec.json.decode(r.value)["id"] for r in records)
    consumer.close()
    return ids


def check_log(runs: list[dict[str, Any]], ids: Counter[str]) -> dict[str, Any]:
    """The log against the answers: every id answered 202 is in it, once; any other id in it is
    one wrk sent and never read the answer to (in flight when it stopped, or on a connection
    that failed), and there are no more of those than commands sent and not answered."""
    accepted = Counter(i for r in runs for i in r.pop("accepted"))
    unanswered = sum(r["commands_sent"] for r in runs) - sum(
        sum(r["command_statuses"].values()) for r in runs
    )
    sent = {(r["run"], t): n for r in runs for t, n in r["sent_by_thread"].items()}

    def was_sent(command_id: str) -> bool:
        run, thread, n = [*command_id.rsplit("-", 2), "", ""][:3]
        return n.isdigit() and 1 <= int(n) <= sent.get((run, thread), 0)

    not_logged = sorted(set(accepted) - set(ids))
    extra = set(ids) - set(accepted)
    unexplained = sorted(i for i in extra if not was_sent(i))
    duplicates = sum(n - 1 for n in ids.values() if n > 1)
    check = {
        "accepted": sum(accepted.values()),
        "accepted_twice": sum(n - 1 for n in accepted.values() if n > 1),
        "records": sum(ids.values()),
        "duplicates": duplicates,
        "accepted_not_logged": len(not_logged),
        "logged_unanswered": len(extra),
        "sent_not_answered": unanswered,
        "logged_never_sent": len(unexplained),
    }
    check["ok"] = not (not_logged or duplicates or unexplained or check["accepted_twice"])
    check["ok"] = check["ok"] and len(extra) <= unanswered
    log(f"log check: {check}")
    if not check["ok"]:
        raise RuntimeError(
            f"the log does not hold exactly the accepted commands: {check}; "
            f"missing e.g. {not_logged[:5]}, extra e.g. {unexplained[:5]}"
        )
    return check


def run(
    brokers: str,
    work: Path,
    seconds: float = 20.0,
    replicas: tuple[int, ...] = (1, 2),
    profiled: bool = False,
) -> dict[str, Any]:
    """Every figure of the edge's benchmark, on the broker given."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    commands = valid_commands(TEMPLATES)
    tails = work / "tails.jsonl"
    write_tails(commands, tails)
    results: dict[str, Any] = {"load_average_at_start": os.getloadavg(), "seconds": seconds}
    for topic in ("edge6", "produce6"):
        with CommandLog(brokers, topic) as command_log:
            command_log.ensure(6)
    results["kafka_python"] = baseline(brokers, "produce6", commands, seconds)
    results["librdkafka"] = librdkafka(brokers, "produce6", commands, seconds)
    runs: list[dict[str, Any]] = []
    for n in replicas:
        edges = Edges(brokers, "edge6", work / f"edges-{n}", n)
        try:
            runs.append(wrk(edges.url, f"warm{n}", BATCH, 3, work, tails))  # the producers
            spy = profile(edges.pids[0], seconds, work / f"profile-{n}.txt") if profiled else None
            results[f"batch_{n}"] = wrk(edges.url, f"b{n}", BATCH, seconds, work, tails)
            if spy is not None:
                results[f"profile_{n}"] = top_frames(spy, work / f"profile-{n}.txt")
            results[f"single_{n}"] = wrk(edges.url, f"s{n}", 0, seconds, work, tails)
        finally:
            codes = edges.stop()
        if any(codes):
            raise RuntimeError(f"an edge exited with {codes}")
        runs += [results[f"batch_{n}"], results[f"single_{n}"]]
    results["load_average_at_end"] = os.getloadavg()
    results["log"] = check_log(runs, logged_ids(brokers, "edge6"))
    return results


def rows(e: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """The edge's rows of `make bench`'s table."""
    base = e["kafka_python"]["commands_per_s"]
    out = []
    for key in sorted(k for k in e if k.startswith("batch_")):
        n = key.removeprefix("batch_")
        b, s = e[key], e[f"single_{n}"]
        met = b["commands_accepted_per_s"] >= 25_000 and b["p99_ms"] <= 100
        out += [
            (
                f"7. edge x{n}, {CONNECTIONS} connections, batches of {BATCH} (wrk)",
                f"{b['commands_accepted_per_s']:,} cmd/s accepted ({b['requests_per_s']:,} req/s, "
                f"p50 {b['p50_ms']} ms, p99 {b['p99_ms']} ms; {_statuses(b)})",
                f"kafka-python producer: {base:,} cmd/s; target >= 25,000 cmd/s, p99 <= 100 ms",
                f"{b['commands_accepted_per_s'] / base:.2f}x, target {'met' if met else 'missed'}",
                "make bench",
            ),
            (
                f"7. edge x{n}, {CONNECTIONS} connections, one command a request (wrk)",
                f"{s['requests_per_s']:,} req/s (p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms; "
                f"{_statuses(s)})",
                f"kafka-python producer: {base:,} cmd/s",
                f"{s['commands_accepted_per_s'] / base:.2f}x",
                "make bench",
            ),
        ]
    rd = e["librdkafka"]["commands_per_s"]
    out.append(
        (
            "7. the edge's client: kafka-python vs librdkafka (no edge, no HTTP)",
            f"kafka-python producer: {base:,} cmd/s",
            f"confluent-kafka producer: {rd:,} cmd/s",
            f"{base / rd:.2f}x",
            "make bench",
        )
    )
    c = e["log"]
    out.append(
        (
            "7. edge: the log read back against the answers",
            f"{c['accepted']:,} ids answered 202, {c['records']:,} records, "
            f"{c['duplicates']} duplicates, {c['accepted_not_logged']} accepted but missing, "
            f"{c['logged_unanswered']:,} of requests whose answers wrk never read "
            f"(<= {c['sent_not_answered']:,} sent unanswered)",
            "target: exactly the accepted commands",
            "yes" if c["ok"] else "no",
            "make bench",
        )
    )
    return out


def _statuses(figures: dict[str, Any]) -> str:
    answers = ", ".join(f"{n:,} x {s}" for s, n in sorted(figures["statuses"].items()))
    failed = {k: n for k, n in figures["socket_errors"].items() if n}
    return f"answers {answers}" + (f"; socket errors {failed}" if failed else "")


if __name__ == "__main__":
    from bench.__main__ import machine, render
    from deploy.broker import KafkaDistribution, LocalBroker

    parser = argparse.ArgumentParser(prog="python -m bench.edge")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--profile", action="store_true", help="py-spy one edge under load")
    a = parser.parse_args()
    work = REPO / ".cache" / "bench-edge"
    shutil.rmtree(work, ignore_errors=True)
    broker = LocalBroker(work / "broker", KafkaDistribution(REPO / ".cache"))
    bootstrap = broker.start().bootstrap
    try:
        figures = run(bootstrap, work / "runs", a.seconds, tuple(a.replicas), a.profile)
    finally:
        broker.stop()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = REPO / "bench" / "results" / f"edge-{stamp}.json"
    out.write_text(json.dumps({"machine": machine(), "edge": figures}, indent=2))
    print(render(rows(figures)))
    log(f"{out.relative_to(REPO)} written")
