"""The runtime's HTTP server: a small JSON control API, `/metrics` for Prometheus, and the
read-only query endpoint that lets other processes read the embedded store.

Routes:
- `GET /health` → `{"status": "ok", "pid": …}`
- `GET /metrics` → Prometheus text exposition
- `GET /deployments` → `[{"name", "state", "error"}]`
- `POST /query` with `{"sql": "…"}` → `{"columns", "types", "rows"}`; runs with `readonly`

When the runtime has a token, every request must carry `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from commands.errors import CqrsError

if TYPE_CHECKING:
    from deploy.runtime import Runtime

log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024


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
        if not self._authorized():
            return
        if self.path == "/health":
            self._json({"status": "ok", "pid": self.runtime.pid})
        elif self.path == "/metrics":
            body = generate_latest(self.runtime.registry)
            self._send(HTTPStatus.OK, body, CONTENT_TYPE_LATEST)
        elif self.path == "/deployments":
            self._json(self.runtime.describe())
        else:
            self._json({"error": f"no route GET {self.path}"}, HTTPStatus.NOT_FOUND)

    def do_POST(self) -> None:
        if not self._authorized():
            return
        if self.path != "/query":
            self._json({"error": f"no route POST {self.path}"}, HTTPStatus.NOT_FOUND)
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._json({"error": "request body too large"}, HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return
        try:
            sql = json.loads(self.rfile.read(length))["sql"]
            if not isinstance(sql, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            self._json({"error": 'send JSON {"sql": "<statement>"}'}, HTTPStatus.BAD_REQUEST)
            return
        try:
            self._json(self.runtime.query(sql).to_json())
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
