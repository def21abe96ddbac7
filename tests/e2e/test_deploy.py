"""`cqrs deploy` as a user runs it, against `cqrs serve`: producers keep producing, readers keep
reading every stable view, and the switch to v2 is seen by nobody as a failure, an empty view or
a mix of versions. Then the runtime is killed while a third version catches up, and re-running
the steps ends in one active deployment that every view reads; rollback and abort do what they
say, and refuse when there is nothing to undo."""

import itertools
import json
import re
import signal
import threading
import time
from pathlib import Path

from commands.producer import CommandProducer
from examples.orders.generator import OrderGenerator
from tests.conftest import REPO, runtime_api
from tests.e2e.test_cli import cqrs, serve

V1 = str(REPO / "examples" / "orders" / "specs" / "orders.yaml")
V2 = str(REPO / "examples" / "orders" / "specs" / "orders_v2.yaml")
VIEWS = ("orders", "revenue_per_minute")


def cells(line):
    """A table row's cells (none for a border or the header)."""
    return [c.strip() for c in line.split("│")[1:-1]]


def test_deploy_v2_with_no_downtime_then_survive_a_killed_runtime(env, brokers, tmp_path):
    topic = env["CQRS_TOPIC"]
    cqrs(env, "topic", "create", "--partitions", "3")
    generator = OrderGenerator(seed=111, step_ms=20)
    with CommandProducer(brokers, topic) as producer:
        for command in generator.take(20_000):
            producer.send(command)
        producer.flush()
    runtime = serve(env)
    try:
        first = cqrs(env, "deploy", V1)
        assert "active orders_v1" in first.stderr
        api = runtime_api(env)
        deadline = time.monotonic() + 60
        while any(api.query(f"SELECT count() FROM query.{v}").rows[0][0] == 0 for v in VIEWS):
            assert time.monotonic() < deadline
            time.sleep(0.5)

        stop = threading.Event()
        ticks: list[float] = []
        errors: list[int] = []
        failures: list[str] = []
        seen: set[str] = set()
        counters = {"empty": 0, "mixed": 0, "reads": 0}

        def produce_forever():
            with CommandProducer(brokers, topic) as producer:
                while not stop.is_set():
                    for command in generator.take(100):
                        producer.send(command)
                    producer.flush()
                    ticks.append(time.monotonic())
                    time.sleep(0.05)
                errors.append(producer.errors)

        def read_forever():
            reader = runtime_api(env)
            while not stop.is_set():
                try:
                    for view in VIEWS:
                        if reader.query(f"SELECT count() FROM query.{view}").rows[0][0] == 0:
                            counters["empty"] += 1
                    ((a, b),) = reader.query(
                        "SELECT (SELECT any(_deployment) FROM query.orders), "
                        "(SELECT any(_deployment) FROM query.revenue_per_minute)"
                    ).rows
                    seen.add(a)
                    counters["mixed"] += a != b
                    counters["reads"] += 1
                except Exception as exc:
                    failures.append(repr(exc))

        threads = [threading.Thread(target=produce_forever), threading.Thread(target=read_forever)]
        for t in threads:
            t.start()
        try:
            done = cqrs(env, "deploy", V2, "--rollback-window", "2", timeout=600)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        assert "active orders_v2, green -, draining -" in " ".join(done.stderr.split())
        assert failures == [] and counters["empty"] == 0 and counters["mixed"] == 0
        assert seen == {"orders_v1", "orders_v2"} and counters["reads"] > 20
        assert errors == [0]
        gaps = [b - a for a, b in itertools.pairwise(ticks)]
        assert max(gaps) < 3.0, f"the producer stalled for {max(gaps):.1f}s"
        assert api.query("SELECT countIf(customer_id LIKE 'test-%') FROM query.orders").rows == [
            [0]
        ]
        assert api.query("SELECT count() FROM query.top_skus_5m").rows[0][0] > 0

        # v3 catches up; the runtime is killed meanwhile
        v3 = tmp_path / "orders_v3.yaml"
        v3.write_text(
            Path(V2).read_text().replace("version: 2", "version: 3").replace("k: 10", "k: 5")
        )
        cqrs(env, "deploy", "init", str(v3))
        runtime.send_signal(signal.SIGKILL)
        runtime.wait()
    finally:
        if runtime.poll() is None:
            runtime.send_signal(signal.SIGTERM)
            runtime.wait(60)
    runtime = serve(env)
    try:
        cqrs(env, "deploy", "await", "orders", "--timeout", "300", timeout=400)
        promoted = cqrs(env, "deploy", "promote", "orders", timeout=400)
        assert "active orders_v3, green -, draining orders_v2" in " ".join(promoted.stderr.split())
        api = runtime_api(env)
        # rollback within the window: v2 serves again, v3 waits as green; then promote again
        rolled = cqrs(env, "deploy", "rollback", "orders")
        assert "active orders_v2, green orders_v3, draining -" in " ".join(rolled.stderr.split())
        assert api.query("SELECT DISTINCT _deployment FROM query.orders").rows == [["orders_v2"]]
        again = cqrs(env, "deploy", "promote", "orders")
        assert "active orders_v3, green -, draining orders_v2" in " ".join(again.stderr.split())
        state = api.deploy_state("orders")
        assert state.pointer == state.active == "orders_v3"
        for view in ("orders", "revenue_per_minute", "top_skus_5m"):
            assert api.query(f"SELECT DISTINCT _deployment FROM query.{view}").rows == [
                ["orders_v3"]
            ]
        cqrs(env, "deploy", "cleanup", "orders")
        history = json.loads(cqrs(env, "deploy", "history", "orders", "--json").stdout)
        stages = {v["name"]: v["stage"] for v in history["versions"]}
        assert stages == {"orders_v1": "retired", "orders_v2": "retired", "orders_v3": "active"}
        assert history["versions"][2]["changes"] == ["top_skus_5m step changed: sliding"]
        told = " ".join(cqrs(env, "deploy", "history", "orders").stdout.split())
        assert "orders_v1 (retired): first version" in told
        assert "orders_v3 (active): top_skus_5m step changed: sliding" in told
        assert re.search(r"orders_v2 +rolled back +from orders_v3", told), told

        # a v4 in flight is aborted: dropped, v3 untouched; nothing is left to roll back
        v4 = tmp_path / "orders_v4.yaml"
        v4.write_text(v3.read_text().replace("version: 3", "version: 4"))
        cqrs(env, "deploy", "init", str(v4))
        aborted = cqrs(env, "deploy", "abort", "orders")
        assert "active orders_v3, green -, draining -" in " ".join(aborted.stderr.split())
        assert api.query("SELECT DISTINCT _deployment FROM query.orders").rows == [["orders_v3"]]
        stages = {v.name: v.stage for v in api.deploy_history("orders").versions}
        assert stages["orders_v4"] == "aborted"
        for step, message in [
            ("abort", "orders has no deployment in flight to abort"),
            ("rollback", "orders has no draining deployment to roll back to"),
        ]:
            refused = cqrs(env, "deploy", step, "orders", check=False)
            assert refused.returncode == 2 and message in " ".join(refused.stderr.split())

        # a deploy that cannot catch up in time rolls itself back: nothing is left in flight,
        # and the same version can be deployed again
        failed = cqrs(env, "deploy", str(v4), "--timeout", "0", check=False)
        said = " ".join(failed.stderr.split())
        assert failed.returncode == 2 and "rolled back: orders_v4 aborted" in said, said
        state = api.deploy_state("orders")
        assert (state.active, state.green, state.draining) == ("orders_v3", None, None)
        again = cqrs(env, "deploy", str(v4), timeout=600)
        assert "active orders_v4, green -, draining -" in " ".join(again.stderr.split())
        assert [s["name"] for s in json.loads(cqrs(env, "status", "--json").stdout)] == [
            "orders_v4"
        ]

        # read at 80 columns, piped: the compact table fits and hides what is gone; --all shows
        # it; --wide has every column, each deployment on one whole line
        narrow = {**env, "COLUMNS": "80"}
        compact = cqrs(narrow, "status").stdout.splitlines()
        assert max(map(len, compact)) <= 80, compact
        assert [cells(line)[0] for line in compact if cells(line)] == ["orders_v4"]
        assert cells(next(line for line in compact if "orders_v4" in line))[1] == "running"
        everything = {cells(line)[0]: cells(line) for line in
                      cqrs(narrow, "status", "--all").stdout.splitlines() if cells(line)}  # fmt: skip
        assert everything.keys() == {"orders_v1", "orders_v2", "orders_v3", "orders_v4"}
        assert {everything[n][1] for n in ("orders_v1", "orders_v2", "orders_v3")} == {"retired"}
        (wide,) = [cells(line) for line in cqrs(narrow, "status", "--wide").stdout.splitlines()
                   if cells(line)]  # fmt: skip
        assert wide[0] == "orders_v4" and len(wide) == 9, wide
        assert wide[5] == "1" and re.fullmatch(r"0 \(pid \d+\): [\d,]+", wide[6]), wide
        assert re.fullmatch(
            r"orders [\d,]+, revenue_per_minute [\d,]+, top_skus_5m [\d,]+", wide[7]
        )
        assert re.fullmatch(r"[\d,]+ / [\d,]+", wide[8]), wide
        history = cqrs(narrow, "deploy", "history", "orders").stdout.splitlines()
        assert "orders_v3 (retired): top_skus_5m step changed: sliding" in history
        assert "orders_v4 (active): the same spec as orders_v3 but its version" in history
        assert any(re.fullmatch(r"  \S+ \S+Z  orders_v2 +rolled back +from orders_v3", line.rstrip())
                   for line in history), history  # fmt: skip
    finally:
        runtime.send_signal(signal.SIGTERM)
        runtime.wait(60)
