"""One data dir with the orders pipeline's projections, and one runtime process (`cqrs serve`)
on it, shared by every security test: the runtime runs with short read and query timeouts, so
slow clients and endless queries are cut quickly."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deploy.deployment import EPOCH
from deploy.runtime_file import find_runtime
from examples.orders.generator import OrderGenerator
from tests.conftest import REPO, produce
from tests.e2e.test_cli import CQRS, cqrs

READ_TIMEOUT_S = 2.0
QUERY_TIMEOUT_S = 3.0


class Stack:
    """The data dir, and the runtime serving it (started and stopped on demand)."""

    def __init__(self, env: dict[str, str], data_dir: Path, canary: Path) -> None:
        self.env = env
        self.data_dir = data_dir
        self.canary = canary
        self.process: subprocess.Popen[str] | None = None
        self.host = self.port = None
        self.token = ""

    def start(self) -> None:
        self.process = subprocess.Popen(
            [CQRS, "--log-level", "WARNING", "serve"], env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while (info := find_runtime(self.data_dir)) is None:
            assert self.process.poll() is None, self.process.stderr.read()
            assert time.monotonic() < deadline, "the runtime did not come up"
            time.sleep(0.2)
        self.host, _, port = info.url.removeprefix("http://").rpartition(":")
        self.port = int(port)
        self.token = (self.data_dir / "token").read_text().strip()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(60)
        self.process = None

    def settle(self, timeout_s: float = 120.0, still: Callable[[], Any] | None = None) -> None:
        """Until no bounded deployment runs (earlier tests may have left replays finishing; a
        tailing one, like the blue the API test rolled back to, never ends), and then, with
        `still`, until it answers the same twice a Bytewax epoch apart: the supervisor records
        how a run ended a pass after its status says so, and a deployment that resumed writes
        snapshots for a while."""
        deadline = time.monotonic() + timeout_s
        while True:
            _, _, deployments = self.call("GET", "/deployments")
            if all(d["state"] != "running" or d["follow"] for d in deployments):
                break
            assert time.monotonic() < deadline, [(d["name"], d["state"]) for d in deployments]
            time.sleep(0.5)
        seen = still() if still is not None else None
        while still is not None:
            time.sleep(EPOCH.total_seconds() + 1)
            now = still()
            if now == seen:
                return
            assert time.monotonic() < deadline, "the data dir never stopped changing"
            seen = now

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        token: bool = True,
        timeout: float = 60.0,
    ) -> tuple[int, dict[str, str], Any]:
        """One request; the answer's status, headers and JSON (or text)."""
        sent = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            sent["Authorization"] = f"Bearer {self.token}"
        sent.update(headers or {})
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            connection.request(method, path, body=data, headers=sent)
            response = connection.getresponse()
            raw = response.read()
            answer_headers = {k.lower(): v for k, v in response.getheaders()}
        finally:
            connection.close()
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = raw.decode(errors="replace")
        return response.status, answer_headers, doc

    def query(self, sql: str) -> tuple[int, Any]:
        status, _, doc = self.call("POST", "/query", {"sql": sql})
        return status, doc


@pytest.fixture(scope="session")
def stack(brokers, tmp_path_factory):
    root = tmp_path_factory.mktemp("security")
    data_dir = root / "data"
    canary = root / "canary.txt"
    canary.write_text("canary: outside the data dir\n")
    env = {
        **os.environ,
        "CQRS_BROKERS": brokers,
        "CQRS_DATA_DIR": str(data_dir),
        "CQRS_TOPIC": f"sec_{root.name}",
        "CQRS_HTTP_PORT": "0",
        "CQRS_HTTP_READ_TIMEOUT": str(READ_TIMEOUT_S),
        "CQRS_QUERY_TIMEOUT": str(QUERY_TIMEOUT_S),
        "CQRS_ALLOW_MODULES": "tests.fixtures.user_filters",
        "CQRS_PANELS": "examples.orders.dashboard:PANELS",
        "CQRS_TEST_IMPORT_MARKER": str(root / "imported"),
        "PYTHONPATH": str(REPO),
    }
    env.pop("CQRS_TOKEN", None)
    cqrs(env, "topic", "create", "--partitions", "2")
    produce(brokers, env["CQRS_TOPIC"], OrderGenerator(seed=1201, step_ms=200).take(1500))
    cqrs(
        env, "run", str(REPO / "examples" / "orders" / "specs" / "orders.yaml"), "--until-caught-up"
    )
    stack = Stack(env, data_dir, canary)
    stack.start()
    yield stack
    stack.stop()
