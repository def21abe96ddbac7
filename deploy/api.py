"""The runtime's HTTP server: a small JSON control API, `/metrics` for Prometheus, and the
read-only query endpoint that lets other processes read the embedded store.

Routes (JSON in and out; an error is `{"error": "…"}` with status 400, 401 or 404):
- `GET /dashboard` → the built-in dashboard page; `GET /dashboard/data` → what it draws
- `GET /health` → `{"status": "ok", "pid": …}`
- `GET /metrics` → Prometheus text exposition
- `GET /deployments` → every live deployment's status (see `deploy.status.describe`);
  `?all=true` adds the retired and aborted ones
- `GET /deployments/<name>` → one deployment's status
- `POST /deployments` with `{"spec": "<yaml>", "source": "<file name>", "from": "earliest",
  "until": "now", "follow": false, "into": "<name>"}` → creates and starts a deployment (a
  replay), answers its status
- `POST /deployments/<name>/start`, `POST /deployments/<name>/stop` → its status
- `POST /query` with `{"sql": "…"}` → `{"columns", "types", "rows"}`; runs with `readonly`
- `GET /deploy/<pipeline>` → the pipeline's blue/green state (pointer, active, green, draining)
- `GET /deploy/<pipeline>/history` → its versions (with what changed) and its events
- `POST /deploy/init` with `{"spec": "<yaml>", "source": …}` → starts green (or the first)
- `POST /deploy/<pipeline>/promote` with `{"force": false, "max_behind": 5, "wait": 0}`
  (seconds: the gate, and how long to wait for it), and
  `…/rollback`, `…/abort`, `…/cleanup` → the state after the step

When the runtime has a token, every request must carry `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from commands.errors import CqrsError
from deploy.bluegreen import MAX_BEHIND_S

if TYPE_CHECKING:
    from deploy.runtime import Runtime

log = logging.getLogger(__name__)
DASHBOARD_PAGE = (Path(__file__).parent / "static" / "dashboard.html").read_bytes()
MAX_BODY = 1024 * 1024
_STEPS = ("promote", "rollback", "abort", "cleanup")
MAX_PROMOTE_WAIT_S = 300.0  # how long one promote request may wait for its gate


class ApiServer:
    def __init__(self, runtime: Runtime, host: str, port: int, token: str | None) -> None:
        handler = type("Handler", (_Handler,), {"runtime": runtime, "token": token})
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise CqrsError(
                f"cannot serve the runtime API on {host}:{port} ({exc.strerror}); "
                f"pick another port with CQRS_HTTP_PORT or --http-port"
            ) from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="api", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    runtime: Runtime
    token: str | None
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("api %s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        if self.path in ("/", "/dashboard"):  # the page holds no data: it asks for it
            self._send(HTTPStatus.OK, DASHBOARD_PAGE, "text/html; charset=utf-8")
            return
        if not self._authorized():
            return
        if self.path == "/dashboard/data":
            self._answer(self.runtime.dashboard)
        elif self.path == "/health":
            self._json({"status": "ok", "pid": self.runtime.pid})
        elif self.path == "/metrics":
            body = generate_latest(self.runtime.registry)
            self._send(HTTPStatus.OK, body, CONTENT_TYPE_LATEST)
        elif urlsplit(self.path).path == "/deployments":
            flag = parse_qs(urlsplit(self.path).query).get("all", ["false"])[0]
            self._answer(lambda: self.runtime.status(everything=flag in ("1", "true")))
        elif self.path.startswith("/deployments/"):
            name = self.path.removeprefix("/deployments/")
            self._answer(lambda: self.runtime.status(name)[0])
        elif self.path.startswith("/deploy/"):
            parts = self.path.strip("/").split("/")
            if len(parts) == 3 and parts[2] == "history":
                self._answer(lambda: self.runtime.bluegreen.history(parts[1]))
            else:
                self._answer(lambda: self.runtime.bluegreen.state(parts[1]))
        else:
            self._json({"error": f"no route GET {self.path}"}, HTTPStatus.NOT_FOUND)

    def do_POST(self) -> None:
        if not self._authorized():
            return
        body = self._body()
        if body is None:
            return
        runtime = self.runtime
        parts = self.path.strip("/").split("/")
        if parts == ["query"]:
            sql = body.get("sql")
            if not isinstance(sql, str):
                self._json({"error": 'send JSON {"sql": "<statement>"}'}, HTTPStatus.BAD_REQUEST)
                return
            self._answer(lambda: runtime.query(sql).to_json())
        elif parts == ["deployments"]:
            spec = body.get("spec")
            if not isinstance(spec, str):
                self._json({"error": 'send JSON {"spec": "<yaml>", …}'}, HTTPStatus.BAD_REQUEST)
                return

            def create() -> Any:
                record = runtime.create(
                    spec,
                    str(body.get("source") or "<request>"),
                    start=str(body.get("from") or ""),
                    until=body.get("until"),
                    follow=bool(body.get("follow")),
                    into=body.get("into"),
                )
                return runtime.status(record.name)[0]

            self._answer(create)
        elif parts == ["deploy", "init"]:
            spec = body.get("spec")
            if not isinstance(spec, str):
                self._json({"error": 'send JSON {"spec": "<yaml>", …}'}, HTTPStatus.BAD_REQUEST)
                return
            source = str(body.get("source") or "<request>")
            self._answer(lambda: runtime.bluegreen.init(spec, source))
        elif len(parts) == 3 and parts[0] == "deploy" and parts[2] in _STEPS:
            steps = runtime.bluegreen
            step = parts[2]
            if step == "promote":
                force = bool(body.get("force"))
                gate = float(body.get("max_behind", MAX_BEHIND_S))
                wait = min(float(body.get("wait", 0)), MAX_PROMOTE_WAIT_S)
                self._answer(lambda: steps.promote(parts[1], force, gate, wait))
            else:
                self._answer(lambda: getattr(steps, step)(parts[1]))
        elif len(parts) == 3 and parts[0] == "deployments" and parts[2] in ("start", "stop"):
            action = runtime.start if parts[2] == "start" else runtime.stop
            self._answer(lambda: runtime.status(action(parts[1]).name)[0])
        else:
            self._json({"error": f"no route POST {self.path}"}, HTTPStatus.NOT_FOUND)

    def _body(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._json({"error": "request body too large"}, HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return None
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._json({"error": "send a JSON object"}, HTTPStatus.BAD_REQUEST)
            return None
        return body

    def _answer(self, compute: Callable[[], Any]) -> None:
        try:
            self._json(compute())
        except CqrsError as exc:
            self._json({"error": str(exc)}, HTTPStatus.BAD_REQUEST)

    def _authorized(self) -> bool:
        if self.token is None:
            return True
        given = self.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return True
        self._json({"error": "missing or wrong bearer token"}, HTTPStatus.UNAUTHORIZED)
        return False

    def _json(self, doc: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(doc).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
