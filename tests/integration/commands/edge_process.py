"""A real `cqrs edge` process for tests, an HTTP client for it, and a reader of what the log
holds (partition, offset, command) to check its answers against."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from core.envelope import Command, decode_command
from tests.conftest import read_log

CQRS = Path(sys.executable).with_name("cqrs")


class EdgeProcess:
    def __init__(
        self,
        brokers: str,
        topic: str,
        data_dir: Path,
        *args: str,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.tls = tls
        env = {**os.environ, "CQRS_BROKERS": brokers, "CQRS_TOPIC": topic,
               "CQRS_DATA_DIR": str(data_dir)}  # fmt: skip
        env.pop("CQRS_TOKEN", None)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log = data_dir / "edge.log"
        with self.log.open("w") as sink:  # a file: a pipe nobody reads would block the edge
            self.proc = subprocess.Popen(
                [
                    str(CQRS),
                    "--log-level",
                    "WARNING",
                    "edge",
                    "--port",
                    "0",
                    "--schemas",
                    "examples.orders.schemas:SCHEMAS",
                    *args,
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=sink,
            )
        deadline = time.monotonic() + 120
        while not (found := re.search(r"^edge on (\S+)", self.log.read_text(), re.M)):
            assert self.proc.poll() is None, f"the edge ended: {self.log.read_text()}"
            assert time.monotonic() < deadline, f"the edge did not start: {self.log.read_text()}"
            time.sleep(0.05)
        self.url = found.group(1)
        self.token = (data_dir / "token").read_text().strip()
        parts = urlsplit(self.url)
        self.host, self.port = parts.hostname, parts.port

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, token: bool = True,
                timeout: float = 30) -> tuple[int, dict, dict[str, str]]:  # fmt: skip
        """(status, the JSON answer, headers); fails the test if the answer is not JSON."""
        sent = {"Content-Type": "application/json", **(headers or {})}
        if token:
            sent["Authorization"] = f"Bearer {self.token}"
        if self.url.startswith("https:"):
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=self.tls
            )
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=sent)
            answer = conn.getresponse()
            raw = answer.read()
            got = {k.lower(): v for k, v in answer.getheaders()}
        finally:
            conn.close()
        if path == "/metrics" and answer.status == 200:
            return answer.status, {"text": raw.decode()}, got
        assert got.get("content-type", "").startswith("application/json"), (answer.status, raw)
        return answer.status, json.loads(raw), got

    def post(self, body: bytes, content_type: str = "application/json", **headers: str):
        return self.request("POST", "/commands", body, {"Content-Type": content_type, **headers})

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit status (it must end by itself)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def logged(brokers: str, topic: str) -> list[tuple[int, int, Command]]:
    """Every record of the log now: (partition, offset, command)."""
    return [(r.partition, r.offset, decode_command(r.value)) for r in read_log(brokers, topic)]
