"""Serving the app: a uvicorn server in a thread of its own, on a socket bound here (so a busy
port is a clear error at once, and port 0 is known before the first request).

uvicorn installs no signal handlers outside the main thread, so the runtime keeps its own. Its
HTTP/1.1 parser (h11) refuses a negative, non-numeric or doubled Content-Length with 400, which
`_Protocol` answers as JSON like every other error; `_Protocol` also closes, with 408, a
connection whose request head is not complete within the read timeout (uvicorn has no such
timeout: a client that sends its head a byte a minute would hold the connection forever).
Forwarded headers are not trusted: no proxy stands in front of the runtime.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any

import h11
import uvicorn
from prometheus_client import CollectorRegistry
from uvicorn.protocols.http.h11_impl import H11Protocol

from api.app import create_app
from api.security import Guard, Limits, allowed_hosts
from core.errors import CqrsError
from deploy.service import Service

MAX_CONNECTIONS = 256


class ApiServer:
    def __init__(
        self,
        service: Service,
        metrics_registry: CollectorRegistry,
        host: str,
        port: int,
        token: str,
        extra_hosts: tuple[str, ...] = (),
        limits: Limits | None = None,
    ) -> None:
        self.limits = limits or Limits()
        sock = bind(host, port, 128, "the runtime API", "CQRS_HTTP_PORT or --http-port")
        self._socket = sock
        self.host, self.port = host, sock.getsockname()[1]
        app = Guard(
            create_app(service, metrics_registry, self.limits.max_in_flight),
            token,
            allowed_hosts(host, self.port, extra_hosts),
            self.limits,
        )
        config = server_config(app, self.limits.read_timeout_s, timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="api", daemon=True
        )

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = "[::1]" if host == "::" else f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise CqrsError(f"the runtime API on {self.url} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(15)
        self._socket.close()


def bind(
    host: str, port: int, backlog: int, what: str, fix: str, reuse_port: bool = False
) -> socket.socket:
    """A listening socket bound here, before uvicorn starts: the port (0: any free one) is
    known at once, and a port in use is refused with what to change. `reuse_port` lets
    processes of one user share the port (SO_REUSEPORT: Linux spreads connections over them)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise CqrsError(
            f"cannot serve {what} on {host}:{port} ({exc.strerror}); pick another port with {fix}"
        ) from None
    return sock


def server_config(app: Any, read_timeout_s: float, **options: Any) -> uvicorn.Config:
    """uvicorn as every HTTP surface here runs it: the read timeout's protocol, no proxy headers
    trusted (a client cannot claim another address), no server banner, no access log (the
    metrics count requests); `options` add what differs (shutdown grace, TLS)."""
    return uvicorn.Config(
        app,
        http=protocol(read_timeout_s),
        lifespan="on",
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=5,
        **options,
    )


def protocol(read_timeout_s: float) -> type[H11Protocol]:
    class Protocol(_Protocol):
        head_timeout_s = read_timeout_s

    return Protocol


class _Protocol(H11Protocol):
    head_timeout_s = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if len(self.connections) > MAX_CONNECTIONS:
            _write_raw(transport, 503, "too many connections; retry shortly")
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm()
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        _write_raw(self.transport, 400, f"not a valid HTTP/1.1 request ({msg.rstrip('.')})")

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timeout)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            _write_raw(self.transport, 408, f"the request head took over {self.head_timeout_s:g} s")


def _write_raw(transport: Any, status: int, error: str) -> None:
    """An answer written past h11 (which will not send a response before a request), then the
    connection closed."""
    body = json.dumps({"error": error}).encode()
    reason = {400: "Bad Request", 408: "Request Timeout", 503: "Service Unavailable"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    transport.write(head.encode() + body)
    transport.close()
