"""Commands started together with `cqrs serve`: the runtime takes its data dir before the CLI
even loads, and `cqrs status`, `cqrs deploy` and `cqrs query` started right after it wait for
it to serve, instead of opening the store under it or concluding that no runtime runs."""

import json
import signal
import subprocess

from tests.conftest import REPO
from tests.e2e.test_cli import CQRS, cqrs

V1 = str(REPO / "examples" / "orders" / "specs" / "orders.yaml")


def start(env, *args):
    return subprocess.Popen(
        [CQRS, "--log-level", "WARNING", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_commands_started_with_the_runtime_wait_for_it(env):
    cqrs(env, "topic", "create", "--partitions", "2")
    for round_ in range(1):
        runtime = start(env, "serve")
        try:
            commands = {
                "status": start(env, "status", "--json"),
                "deploy": start(env, "deploy", V1),
                "again": start(env, "status", "--json"),
                "query": start(env, "query", "SELECT 1 AS one", "--format", "json"),
            }
            answers = {name: c.communicate(timeout=180) for name, c in commands.items()}
            for name, command in commands.items():
                assert command.returncode == 0, (round_, name, answers[name])
            assert "active orders_v1" in " ".join(answers["deploy"][1].split())
            assert isinstance(json.loads(answers["status"][0]), list)
            assert isinstance(json.loads(answers["again"][0]), list)
            assert json.loads(answers["query"][0])["rows"] == [[1]]
            (status,) = json.loads(cqrs(env, "status", "--json").stdout)
            assert status["name"] == "orders_v1" and status["state"] == "running"
        finally:
            runtime.send_signal(signal.SIGTERM)
            _, err = runtime.communicate(timeout=60)
        assert runtime.returncode == 0, err
