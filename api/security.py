"""What every request must pass before any route runs: one ASGI middleware in front of the app.

In order: the Host must be one the runtime is bound to or configured to be reached by (DNS
rebinding sends a foreign name); an Origin, when a browser sends one, must be the runtime's own
(a page elsewhere cannot use it, even with the token); the bearer token, on every path but the
dashboard page; a bound on requests in flight (503 with Retry-After past it); a POST must say
`Content-Type: application/json` (a cross-site form or `text/plain` POST is refused with 415)
and `Content-Length` (411 without, 413 past the limit) and send that body within the read
timeout (408). The body is read here, whole, before the app sees it, so a slow or oversized
body never reaches a handler or a thread. Malformed lengths never get this far: h11 answers
them with 400 (see `api.server`). Every answer is JSON `{"error": …}`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
JSON_TYPES = ("application/json",)


@dataclass(frozen=True)
class Limits:
    max_body: int = 1024 * 1024
    read_timeout_s: float = 10.0
    max_in_flight: int = 32


def allowed_hosts(bound_host: str, port: int, extra: Iterable[str] = ()) -> frozenset[str]:
    """Host header values this server answers: loopback names with its port, the address it is
    bound to (unless a wildcard), and the configured names (`name` allows `name` and
    `name:<port>`; `name:port` allows just that)."""
    hosts = {f"{name}:{port}" for name in LOOPBACK_NAMES}
    if bound_host not in ("0.0.0.0", "::", ""):
        hosts.add(f"[{bound_host}]:{port}" if ":" in bound_host else f"{bound_host}:{port}")
    for entry in extra:
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry.rpartition(":")[2].isdigit() and not entry.endswith("]"):
            hosts.add(entry)
        else:
            hosts.update({entry, f"{entry}:{port}"})
    return frozenset(h.lower() for h in hosts)


class Guard:
    """ASGI middleware: refuses what no route should see (see the module's docstring)."""

    def __init__(
        self,
        app: App,
        token: str,
        hosts: frozenset[str],
        limits: Limits,
        public: frozenset[str] = frozenset({"/", "/dashboard"}),
        content_types: tuple[str, ...] = JSON_TYPES,
    ) -> None:
        self.app = app
        self._bearer = f"Bearer {token}".encode()
        self.hosts = hosts
        self.origins = frozenset(f"http://{h}" for h in hosts)
        self.limits = limits
        self._public = public
        self._content_types = content_types
        self._in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # no websockets here
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await _answer(send, *refusal)
            return
        if self._in_flight >= self.limits.max_in_flight:
            await _answer(send, 503, "too many requests in flight; retry shortly",
                          [(b"retry-after", b"1")])  # fmt: skip
            return
        self._in_flight += 1
        try:
            if scope["method"] == "POST":
                body = await self._read_body(scope, receive, send)
                if body is None:
                    return
                receive = _replay(body, receive)
            await self._call_app(scope, receive, send)
        finally:
            self._in_flight -= 1

    def _refusal(self, scope: Scope) -> tuple[int, str] | None:
        headers = _headers(scope)
        hosts = headers.get(b"host", [])
        host = hosts[0].decode("latin-1").lower() if len(hosts) == 1 else None
        if host not in self.hosts:
            return 400, (
                f"Host {host!r} is not this runtime's address (DNS rebinding?); add the name to "
                f"CQRS_ALLOWED_HOSTS to reach the runtime by it"
            )
        for origin in headers.get(b"origin", []):
            if origin.decode("latin-1").lower() not in self.origins:
                return 403, "requests from other origins (web pages elsewhere) are refused"
        path = scope["path"].rstrip("/") or "/"
        if scope["method"] == "GET" and path in self._public:
            return None
        given = headers.get(b"authorization", [])
        if len(given) != 1 or not hmac.compare_digest(given[0], self._bearer):
            return 401, (
                "missing or wrong bearer token: send Authorization: Bearer <token> (the "
                "runtime's token is in <data dir>/token; the CLI sends it)"
            )
        return None

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None once the request was answered with why not."""
        headers = _headers(scope)
        close = [(b"connection", b"close")]
        content_type = b";".join(headers.get(b"content-type", [])).decode("latin-1")
        if content_type.split(";")[0].strip().lower() not in self._content_types:
            await _answer(send, 415, f"send the body as JSON, with Content-Type: "
                          f"{' or '.join(self._content_types)}", close)  # fmt: skip
            return None
        lengths = headers.get(b"content-length", [])
        if not lengths or headers.get(b"transfer-encoding"):
            await _answer(send, 411, "send the body with a Content-Length", close)
            return None
        text = lengths[0].decode("latin-1").strip()
        if len(lengths) != 1 or not (text.isascii() and text.isdigit()):
            await _answer(send, 400, f"Content-Length {text!r} is not a length", close)
            return None
        length = int(text)
        if length > self.limits.max_body:
            await _answer(send, 413, f"the body is over {self.limits.max_body:,} bytes", close)
            return None
        chunks: list[bytes] = []
        size = 0
        deadline = time.monotonic() + self.limits.read_timeout_s
        more = True
        while more:
            try:
                message = await asyncio.wait_for(receive(), deadline - time.monotonic())
            except TimeoutError:
                await _answer(send, 408, f"the body took over {self.limits.read_timeout_s:g} s",
                              close)  # fmt: skip
                return None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > length:
                await _answer(send, 400, "the body is longer than its Content-Length", close)
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    async def _call_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *_NO_SNIFF]
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            log.exception("the API failed on %s %s", scope["method"], scope["path"])
            if not started:
                await _answer(send, 500, "internal error; the runtime's log has the details")


_NO_SNIFF = [(b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store")]


def _headers(scope: Scope) -> dict[bytes, list[bytes]]:
    found: dict[bytes, list[bytes]] = {}
    for name, value in scope["headers"]:
        found.setdefault(name.lower(), []).append(value)
    return found


def _replay(body: bytes, receive: Receive) -> Receive:
    """The app's `receive`: the body read already, then whatever comes next (a disconnect)."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


async def _answer(
    send: Send, status: int, error: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"error": error}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *_NO_SNIFF,
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
