"""Serving the edge: uvicorn in the main thread (its signal handlers stop it), on a socket bound
here, behind the API's guard (`api.security.Guard`) with the edge's content types and `/health`
open; TLS when given a certificate and key."""

from __future__ import annotations

import signal
from collections.abc import Callable

import uvicorn

from api.edge import DELIVERY_TIMEOUT_MS, Edge, create_edge_app
from api.security import Guard, Limits, allowed_hosts
from api.server import bind, server_config
from commands.edge import CONTENT_TYPES


def serve_edge(
    edge: Edge,
    host: str,
    port: int,
    token: str,
    limits: Limits,
    rate_per_s: int,
    extra_hosts: tuple[str, ...] = (),
    tls: tuple[str, str] | None = None,
    announce: Callable[[str], None] = print,
    reuse_port: bool = False,
) -> None:
    """Serve until SIGTERM or SIGINT (uvicorn's handlers, in the main thread): then no new
    connection is taken, the requests in flight are answered, and this returns; the caller
    closes the producer, which flushes what is still on its way. With `reuse_port`, edges
    started on one port share it (replicas on one machine)."""
    sock = bind(host, port, 1024, "the edge", "--port", reuse_port)
    port = sock.getsockname()[1]
    guard = Guard(
        create_edge_app(edge, rate_per_s),
        token,
        allowed_hosts(host, port, extra_hosts),
        limits,
        public=frozenset({"/health"}),
        content_types=CONTENT_TYPES,
    )
    config = server_config(
        guard,
        limits.read_timeout_s,
        timeout_graceful_shutdown=DELIVERY_TIMEOUT_MS // 1000 + 5,
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
    )
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host
    announce(f"{'https' if tls else 'http'}://{shown}:{port}")
    # uvicorn raises the signal it stopped on again once it has shut down: with this handler
    # in place that returns here, so the caller still closes the producer
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
