"""`cqrs run --processes 2 --workers 2` as a user runs it: the registry and `cqrs status` show the shape,
the processes and the partitions each reads; a child killed by SIGKILL brings the cluster down
and back as one, from its snapshots, and the projection still equals the oracle; a runtime
killed by SIGKILL leaves no child behind; and the next `cqrs run`, naming no shape, resumes on the
registered two processes from those snapshots (resuming on another shape: tests/integration/
deploy/test_cluster.py)."""

import json
import os
import signal
import subprocess
import time

import msgspec

from commands.log import CommandLog
from examples.orders.generator import OrderGenerator
from tests.conftest import REPO, ask_runtime, produce
from tests.e2e.test_cli import CQRS, cqrs
from tests.oracles import ORDER_COLUMNS, diff_orders, expected_orders

SPEC = str(REPO / "examples" / "orders" / "specs" / "orders.yaml")


def status(env):
    """The one deployment's status (None before the run has registered it)."""
    found = json.loads(cqrs(env, "status", "--json").stdout)
    return found[0] if found else None


def polled(env):
    """The one deployment's status as `cqrs status --json` has it, asked of the runtime's API from
    this process (None while no runtime answers): a `cqrs` process a poll would take a second
    of the two cores the cluster under test runs on."""
    found = ask_runtime(env, lambda api: api.list_deployments(), None)
    return msgspec.to_builtins(found[0], str_keys=True) if found else None


def wait_for(env, check, what, timeout_s=180):
    """The first status that passes `check`."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = polled(env) if os.path.exists(f"{env['CQRS_DATA_DIR']}/runtime.json") else None
        if found is not None and check(found):
            return found
        assert time.monotonic() < deadline, f"{what} not within {timeout_s}s: {found}"
        time.sleep(0.5)


def caught_up(found):
    return found["state"] == "running" and sum(found["lag"].values()) == 0 and found["next"]


def test_a_two_process_two_worker_run_shows_its_shape_restarts_as_one_and_leaves_no_orphan(
    env, brokers
):
    topic = env["CQRS_TOPIC"]
    with CommandLog(brokers, topic) as log:
        log.ensure(4)
    generator = OrderGenerator(seed=81, step_ms=20)
    commands = generator.take(10_000)
    produce(brokers, topic, commands)
    run = subprocess.Popen(
        [CQRS, "--log-level", "WARNING", "run", SPEC, "--processes", "2", "--workers", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        first = wait_for(env, lambda s: caught_up(s) and len(s.get("cluster", [])) == 2, "a run")
        assert (first["processes"], first["workers"]) == (2, 2)
        zero, one = first["cluster"]
        assert zero["pid"] == run.pid and one["pid"] != run.pid
        assert sorted(zero["partitions"] + one["partitions"]) == [0, 1, 2, 3]
        assert zero["partitions"] and one["partitions"], first["cluster"]
        wide = cqrs(env, "status", "--wide").stdout
        assert f"1 (pid {one['pid']})" in wide, wide

        os.kill(one["pid"], signal.SIGKILL)
        more = generator.take(2_000)
        produce(brokers, topic, more)
        commands += more
        again = wait_for(
            env,
            lambda s: (
                caught_up(s)
                and len(s.get("cluster", [])) == 2
                and s["cluster"][1]["pid"] != one["pid"]
            ),
            "the cluster back after its child was killed",
        )
        assert sum(again["next"].values()) == sum(again["end"].values())
        assert diff_orders(expected_orders(commands), query_orders(env)) == []

        child = again["cluster"][1]["pid"]
        run.send_signal(signal.SIGKILL)
        run.wait()
        deadline = time.monotonic() + 30
        while os.path.exists(f"/proc/{child}") and _state(child) != "Z":
            assert time.monotonic() < deadline, f"child {child} outlived its runtime"
            time.sleep(0.1)

        # the next run names no shape: it keeps the registered one (a restart never rescales)
        done = cqrs(env, "run", SPEC, "--until-caught-up")
        assert "orders_v1 completed" in done.stderr
        after = status(env)
        assert (after["processes"], after["workers"]) == (2, 2)
        assert after["next"] == after["end"]
        assert diff_orders(expected_orders(commands), query_orders(env)) == []
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()


def query_orders(env):
    doc = json.loads(
        cqrs(env, "query", f"SELECT {ORDER_COLUMNS} FROM orders_v1.orders FINAL",
             "--format", "json").stdout
    )  # fmt: skip
    return [dict(zip(doc["columns"], row, strict=True)) for row in doc["rows"]]


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
