"""A runtime that lives through many deploys keeps its footprint.

`cqrs deploy <spec>` with its defaults, cycle after cycle, against one `cqrs serve`, while a
producer keeps producing at a share of the pipeline's maximum rate (measured in the same run:
one deployment catching up a backlog in this runtime). Every cycle must promote and clean up;
after the first cycle the runtime's threads, open files and sockets stay flat and its RSS
within a margin. The figures of every cycle go to `test-artifacts/footprint-<cycles>-at-<share>.json`.

Each green replays the whole log from the earliest offset while the producer keeps adding to
it, so a cycle's log is the last one's plus the producer's rate times the last cycle's length:
cycle times grow geometrically, the faster the higher the share. At a tenth, twenty cycles
replay about nine times the first log; at half the maximum rate every cycle still promotes (the
runtime's two deployments together go faster than the one that set the maximum), but the fifth
cycle already replays about seven times the first log.

`make test` runs a lean version (three cycles); `make soak` twenty cycles at a tenth of the
maximum rate and five at half of it.
Versions start at 8, so the cycles cross orders_v9 → orders_v10, which the runtime's list of
deployments (what `cqrs status` prints) must sort as numbers.
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from commands.log import CommandLog
from commands.producer import CommandProducer
from deploy.model import InitRequest
from examples.orders.generator import OrderGenerator
from sinks.store import ENGINE_SETTINGS
from tests.conftest import REPO, runtime_api
from tests.e2e.test_cli import CQRS, serve

ARTIFACTS = REPO / "test-artifacts"
FIRST_VERSION = 8
BACKLOG = 100_000
#: after the first cycle: how much the counts may move (a request thread of the API, the files
#: of a part being written or merged) and how much RSS may grow (pages not given back yet). The engine's
#: pool threads are bounded by its setting instead: busy ones plus at most that many idle.
THREADS_SLACK, FDS_SLACK, SOCKETS_SLACK, RSS_MARGIN = 2, 8, 2, 0.15
IDLE_POOL = int(ENGINE_SETTINGS["max_thread_pool_free_size"])


def footprint(pid: int) -> dict[str, int]:
    """The runtime's threads (Python's apart), open files (the `/proc` files the engine's
    threads hold for their metrics apart), sockets and RSS."""
    proc = Path(f"/proc/{pid}")
    main = (proc / "comm").read_text().strip()
    names = []
    for task in (proc / "task").iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:  # ended while listed
            continue
    links = []
    for fd in (proc / "fd").iterdir():
        try:
            links.append(os.readlink(fd))
        except OSError:
            continue
    status = (proc / "status").read_text().splitlines()
    rss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return {
        "threads": len(names),
        "python_threads": sum(1 for n in names if n == main),
        "fds": len(links),
        "proc_fds": sum(1 for link in links if link.startswith("/proc/")),
        "files": sorted(link for link in links if link.startswith("/") and "/proc/" not in link),
        "anon_fds": sum(1 for link in links if link.startswith(("anon_inode:", "pipe:"))),
        "sockets": sum(1 for link in links if link.startswith("socket:")),
        "rss_mb": rss_kb // 1024,
    }


def settled_footprint(pid: int) -> dict[str, int]:
    """The least of a few samples: what the runtime keeps is there in every sample, while an
    insert or a merge holds its part's files, or a request its thread, in some of them only."""
    samples = []
    for _ in range(5):
        samples.append(footprint(pid))
        time.sleep(0.3)
    out = {k: min(s[k] for s in samples) for k in samples[0] if k != "files"}
    return {**out, "files": min((s["files"] for s in samples), key=len)}


def engine_gauges(api) -> dict[str, int]:
    sql = (
        "SELECT metric, toInt64(value) FROM system.metrics WHERE metric IN ('GlobalThread', "
        "'GlobalThreadActive', 'MarkCacheBytes', 'QueryConditionCacheBytes', "
        "'CompiledExpressionCacheBytes', 'MemoryTracking')"
    )
    return {name: value for name, value in api.query(sql).rows}


#: the pipeline the cycles deploy: the orders pipeline's shared filters and window, with state
#: that stays bounded (dedupe is capped, windows close), so what grows is the runtime's own. The
#: orders pipeline's `order_state` keeps every order it has seen: a runtime running it grows
#: with the log, and each cycle replays a longer one.
SOAK_SPEC = """
name: orders
version: {version}
filters:
  - validate: {{schemas: examples.orders.schemas:SCHEMAS, max_future: 1h}}
  - dedupe: {{ttl: 10m, max_keys: 20000}}
projections:
  - name: paid_per_minute
    steps:
      - select: {{where: {{type: order.paid}}}}
      - tumbling:
          size: 1m
          lateness: 30s
          late: dlq
          group_by: {{currency: data.currency}}
          aggregates: {{paid_orders: count, revenue: {{sum: data.amount}}}}
"""


def spec(tmp_path, version: int) -> str:
    path = tmp_path / f"orders_v{version}.yaml"
    path.write_text(SOAK_SPEC.format(version=version))
    return str(path)


def deploy_cycles(
    env, brokers, tmp_path, cycles: int, share: float = 0.1, control: bool = False
) -> list[dict]:
    """The cycles; with `control`, a fresh runtime on the same data is measured at the end.
    Only the deploys go through the CLI (the subject); the figures between them are asked of the
    runtime's API in this process: a `cqrs` process a figure would cost more than the cycle's
    measurements (seconds on a busy machine)."""
    topic = env["CQRS_TOPIC"]
    with CommandLog(brokers, topic) as log:
        log.ensure(3)
    now_ms = int(time.time() * 1000)
    with CommandProducer(brokers, topic) as producer:
        for command in OrderGenerator(seed=131, start_ms=now_ms - 3_600_000).take(BACKLOG):
            producer.send(command)
        producer.flush()
    runtime = serve(env)
    producer = None
    figures: list[dict] = []
    last = FIRST_VERSION + cycles
    try:
        # the pipeline's maximum rate, in this runtime: the first deployment catches up
        api = runtime_api(env)
        first_spec = spec(tmp_path, FIRST_VERSION)
        api.deploy_init(InitRequest(Path(first_spec).read_text(), first_spec))
        name = f"orders_v{FIRST_VERSION}"
        # timed from its first written rows on: not the deployment's start, but its pace. A
        # flush may carry tens of thousands of commands at once (a worker's partitions share
        # one batch of up to `max_rows`), so the first may already be past half the backlog.
        while (done := api.get_deployment(name).done) < 1:
            time.sleep(0.05)
        first = done, time.monotonic()
        while (done := api.get_deployment(name).done) < BACKLOG:
            time.sleep(0.05)
        max_rate = (done - first[0]) / (time.monotonic() - first[1])
        assert done - first[0] >= BACKLOG / 4, "too little of the backlog was left to time"
        rate = share * max_rate
        print(f"maximum rate {max_rate:,.0f} commands/s; producing at {rate:,.0f}", flush=True)
        producer_started = time.monotonic()
        producer = subprocess.Popen(
            [CQRS, "produce", "--rate", f"{rate:.0f}", "--partitions", "3", "--seed", "132"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for cycle in range(1, cycles + 1):
            version = FIRST_VERSION + cycle
            began = time.monotonic()
            done = subprocess.run(
                [CQRS, "--log-level", "WARNING", "deploy", spec(tmp_path, version)],
                env=env, capture_output=True, text=True, timeout=1800,
            )  # fmt: skip
            took = time.monotonic() - began
            assert done.returncode == 0, f"cycle {cycle}: {done.stderr[-3000:]}"
            said = " ".join(done.stderr.split())
            assert f"active orders_v{version}, green -, draining -" in said, said
            promoted = next(
                e
                for e in api.deploy_history("orders").events[::-1]
                if e.name == f"orders_v{version}" and e.event == "promoted"
            )
            active = api.get_deployment(f"orders_v{version}")
            figures.append({
                "cycle": cycle, "version": version, "seconds": round(took, 1),
                "max_rate": round(max_rate), "producer_rate": round(rate),
                "promoted": promoted.detail, "log": sum(active.end.values()),
                "achieved_rate": round((sum(active.end.values()) - BACKLOG)
                                       / (time.monotonic() - producer_started)),
                "rows": active.rows["paid_per_minute"],
                **settled_footprint(runtime.pid), **engine_gauges(api),
            })  # fmt: skip
            print(json.dumps(figures[-1]), flush=True)
        live = api.list_deployments()
        every = api.list_deployments(everything=True)
        fresh = {}
        if control:  # a fresh runtime on the same data, resumed and caught up
            producer.send_signal(signal.SIGTERM)
            producer.wait(30)
            producer = None
            runtime.send_signal(signal.SIGTERM)
            runtime.wait(60)
            runtime = serve(env)
            api = runtime_api(env)
            deadline = time.monotonic() + 300
            while api.get_deployment(f"orders_v{last}").behind_s != 0:
                assert time.monotonic() < deadline, "the restarted runtime did not catch up"
                time.sleep(0.5)
            fresh = {"cycle": "fresh", **settled_footprint(runtime.pid), **engine_gauges(api)}
            print(json.dumps(fresh), flush=True)
    finally:
        if producer is not None:
            producer.send_signal(signal.SIGTERM)
            producer.wait(30)
        runtime.send_signal(signal.SIGTERM)
        runtime.wait(60)
    ARTIFACTS.mkdir(exist_ok=True)
    rows = [*figures, fresh] if fresh else figures
    name = f"footprint-{cycles}-at-{share:g}.json"
    (ARTIFACTS / name).write_text(json.dumps(rows, indent=1))

    assert [s.name for s in live] == [f"orders_v{last}"]
    assert [s.version for s in every] == list(range(FIRST_VERSION, last + 1))
    assert {s.stage for s in every[:-1]} == {"retired"}
    first = figures[0]
    for row in figures:
        assert row["GlobalThread"] - row["GlobalThreadActive"] <= IDLE_POOL, row
    for row in figures[1:]:
        for key, slack in (("threads", THREADS_SLACK), ("fds", FDS_SLACK)):
            # what is not the engine's global pool (or the files its threads hold) stays flat
            pool = "GlobalThread" if key == "threads" else "proc_fds"
            assert row[key] - row[pool] <= first[key] - first[pool] + slack, (key, first, row)
        assert row["python_threads"] <= first["python_threads"] + 1, (first, row)
        assert row["sockets"] <= first["sockets"] + SOCKETS_SLACK, (first, row)
        assert row["rss_mb"] <= first["rss_mb"] * (1 + RSS_MARGIN), (first, row)
    return figures


@pytest.fixture
def env(tmp_path, brokers, unique):
    return {
        **os.environ,
        "CQRS_BROKERS": brokers,
        "CQRS_DATA_DIR": str(tmp_path / "data"),
        "CQRS_TOPIC": f"soak_{unique}",
        "CQRS_HTTP_PORT": "0",
    }


def test_deploy_cycles_keep_the_footprint(env, brokers, tmp_path):
    deploy_cycles(env, brokers, tmp_path, cycles=3)


@pytest.mark.soak
def test_twenty_deploy_cycles_keep_the_footprint(env, brokers, tmp_path):
    deploy_cycles(env, brokers, tmp_path, cycles=20, control=True)


@pytest.mark.soak
def test_deploy_cycles_at_half_the_maximum_rate(env, brokers, tmp_path):
    deploy_cycles(env, brokers, tmp_path, cycles=5, share=0.5)
