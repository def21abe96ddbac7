"""The edge as an HTTP service: `POST /commands` appends checked commands to the log and answers
202 only once the broker acknowledged them (acks=all, idempotent producer), with each command's
partition and offset.

Behind the same guard as the runtime's API (token, Host/Origin, body limit, requests in flight)
and a per-client rate limit (429 with Retry-After). Answers, always JSON
`{"accepted", "refused", "unavailable", "commands": [...], "error"?}`, one entry per command in
body order: 202 when every command is in the log; 400/409/422 when none is (each entry names
the field and what was expected); 207 when a batch was split; 503 with Retry-After when the
broker did not acknowledge some command in time (the entries say which did: resend the rest, or
all, with the same ids). An id the edge logged already is answered from memory without a
second append (the same partition and offset); a resend that reaches another edge replica is
appended again, and the pipeline's `dedupe` drops it.

While appends fail, the edge answers 503 at once, letting one request a second through to
probe the broker, so a stopped broker costs clients no timeouts. `/health` (no token) says 503
in that state, for load balancers. `/metrics`, `/openapi.json` (generated from the schema
registry) need the token. The edge never opens the ClickHouse store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import msgspec
from kafka.errors import KafkaError
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.middleware.rate_limit import RateLimitConfig
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from api.edge_openapi import openapi_document
from commands.edge import AnswerCache, BodyError, Checked, Refused, parse_body
from commands.producer import CommandProducer
from commands.schemas import SchemaRegistry

log = logging.getLogger(__name__)

#: how long appends may be tried before the edge gives up on them (and answers 503): the
#: producer expires a record it could not deliver by then, so a 503 is never for a record that
#: is still waiting to be sent (one already sent may yet land: resend it, same id)
DELIVERY_TIMEOUT_MS = 5000
PRODUCER_SETTINGS: dict[str, Any] = {
    "linger_ms": 5,
    "request_timeout_ms": 4000,
    "delivery_timeout_ms": DELIVERY_TIMEOUT_MS,
    "max_block_ms": 2000,
}
PROBE_EVERY_S = 1.0


class EdgeMetrics:
    """The edge's metrics, on the registry given (tests pass a fresh one)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "cqrs_edge_requests", "requests answered, by status", ["status"], registry=registry
        )
        self.commands = Counter(
            "cqrs_edge_commands",
            "commands answered: accepted, refused (by reason), unavailable",
            ["outcome", "reason"],
            registry=registry,
        )
        self.produce_seconds = Histogram(
            "cqrs_edge_produce_seconds",
            "from append to the broker's acknowledgement",
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        self.in_flight = Gauge(
            "cqrs_edge_requests_in_flight", "requests being handled", registry=registry
        )


class Edge:
    """Checks, appends and answers; holds the recent answers and the broker's health."""

    def __init__(
        self,
        producer: CommandProducer,
        schemas: SchemaRegistry,
        metrics: EdgeMetrics,
        max_future_ms: int = 3_600_000,
    ) -> None:
        self.producer = producer
        self.schemas = schemas
        self.metrics = metrics
        self.max_future_ms = max_future_ms
        self._answers = AnswerCache()
        self._pending: dict[str, tuple[int, asyncio.Future[tuple[int, int]]]] = {}
        self._failing = False
        self._probed = 0.0

    @property
    def failing(self) -> bool:
        return self._failing

    async def handle(
        self, content_type: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        now_ms = int(time.time() * 1000)
        try:
            batch, items = parse_body(
                content_type, headers, body, self.schemas, now_ms, self.max_future_ms
            )
        except BodyError as exc:
            return exc.status, {"error": str(exc)}
        results = await self._submit(items)
        for result in results:
            outcome = {202: "accepted", 503: "unavailable"}.get(result["status"], "refused")
            self.metrics.commands.labels(outcome, result.get("reason", "")).inc()
        return _answer(batch, results)

    async def _submit(self, items: list[Checked | Refused]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = [{} for _ in items]
        waits: dict[int, asyncio.Future[tuple[int, int]]] = {}
        loop = asyncio.get_running_loop()
        for item in items:
            if isinstance(item, Refused):
                results[item.index] = msgspec.structs.asdict(item)
                continue
            known = self._answers.get(item)
            pending = self._pending.get(item.command.id)
            if known is False or (pending is not None and pending[0] != hash(item.value)):
                results[item.index] = _conflict(item)
            elif known is not None:
                results[item.index] = _accepted(item, *known)
            elif pending is not None:
                waits[item.index] = pending[1]
            elif self._failing and time.monotonic() - self._probed < PROBE_EVERY_S:
                results[item.index] = _unavailable(item, "the broker is not answering")
            else:
                self._probed = time.monotonic()
                try:
                    waits[item.index] = self._append(loop, item)
                except KafkaError as exc:
                    results[item.index] = _unavailable(item, f"{type(exc).__name__}: {exc}")
        if waits:
            _, late = await asyncio.wait(
                set(waits.values()), timeout=DELIVERY_TIMEOUT_MS / 1000 + 2
            )
            if late:  # the producer neither delivered nor expired them: it is failing too
                self._fail()
            for index, future in waits.items():
                if future in late:  # a resend appends afresh rather than wait on this one
                    self._forget(items[index].command.id, future)
                    if not future.done():
                        future.set_exception(TimeoutError("no acknowledgement in time"))
                        future.exception()
        for index, future in waits.items():
            item = items[index]
            assert isinstance(item, Checked)
            if future.done() and future.exception() is None:
                results[index] = _accepted(item, *future.result())
            else:
                why = future.exception() if future.done() else "no acknowledgement in time"
                results[index] = _unavailable(item, str(why))
        return results

    def _append(
        self, loop: asyncio.AbstractEventLoop, item: Checked
    ) -> asyncio.Future[tuple[int, int]]:
        done: asyncio.Future[tuple[int, int]] = loop.create_future()
        digest = hash(item.value)
        self._pending[item.command.id] = (digest, done)
        started = time.monotonic()

        def settle(partition: int, offset: int, error: BaseException | None) -> None:
            self._forget(item.command.id, done)
            if error is None:
                self._failing = False
                self._answers.put(item, partition, offset)
                self.metrics.produce_seconds.observe(time.monotonic() - started)
            else:
                self._fail()
            if not done.done():
                if error is None:
                    done.set_result((partition, offset))
                else:
                    done.set_exception(error)
                done.exception()  # a result nobody waits for any more is not an error

        try:
            future = self.producer.send_raw(item.key, item.value)
        except BaseException:
            self._pending.pop(item.command.id, None)
            self._fail()
            raise
        future.add_callback(
            lambda meta: loop.call_soon_threadsafe(settle, meta.partition, meta.offset, None)
        )
        future.add_errback(lambda exc: loop.call_soon_threadsafe(settle, -1, -1, exc))
        return done

    def _forget(self, command_id: str, future: asyncio.Future[tuple[int, int]]) -> None:
        found = self._pending.get(command_id)
        if found is not None and found[1] is future:
            del self._pending[command_id]

    def _fail(self) -> None:
        """Appends fail: answer 503 at once but for a probe a second. A client that wedged
        after a broker restart is replaced by the producer itself (`commands.producer`)."""
        self._failing = True

    def close(self) -> None:
        self.producer.close()


def _accepted(item: Checked, partition: int, offset: int) -> dict[str, Any]:
    return {
        "index": item.index,
        "id": item.command.id,
        "status": 202,
        "partition": partition,
        "offset": offset,
    }


def _conflict(item: Checked) -> dict[str, Any]:
    return {
        "index": item.index,
        "id": item.command.id,
        "status": 409,
        "reason": "id_conflict",
        "path": "$.id",
        "expected": "a new id: this one was taken by a different command",
    }


def _unavailable(item: Checked, why: str) -> dict[str, Any]:
    return {
        "index": item.index,
        "id": item.command.id,
        "status": 503,
        "reason": "unavailable",
        "expected": f"not logged ({why}); resend with the same id",
    }


def _answer(batch: bool, results: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    statuses = [r["status"] for r in results]
    body: dict[str, Any] = {
        "accepted": statuses.count(202),
        "refused": sum(1 for s in statuses if s not in (202, 503)),
        "unavailable": statuses.count(503),
        "commands": results,
    }
    if 503 in statuses:
        status = 503
    elif all(s == 202 for s in statuses):
        status = 202
    elif 202 in statuses:
        status = 207
    else:
        status = 409 if all(s == 409 for s in statuses) else 422
    if status == 503:
        body["error"] = "the broker did not acknowledge every command; resend with the same ids"
    elif status >= 400:
        first = next(r for r in results if r["status"] >= 400)
        where = f"command {first['index']}: " if batch else ""
        body["error"] = f"{where}{first['path']}: {first['expected']}"
    return status, body


def create_edge_app(edge: Edge, rate_per_s: int) -> Litestar:
    """The edge's routes; the guard (`api.security.Guard`) goes in front of them."""
    document = msgspec.json.encode(openapi_document(edge.schemas))

    @post("/commands", status_code=202)
    async def commands(request: Request) -> Response[bytes]:
        edge.metrics.in_flight.inc()
        try:
            headers = {k.lower(): v for k, v in request.headers.items()}
            status, body = await edge.handle(
                headers.get("content-type", ""), headers, await request.body()
            )
        finally:
            edge.metrics.in_flight.dec()
        edge.metrics.requests.labels(str(status)).inc()
        extra = {"Retry-After": "1"} if status == 503 else None
        return Response(
            msgspec.json.encode(body), status_code=status, media_type=MediaType.JSON, headers=extra
        )

    @get("/health")
    async def health() -> Response[dict[str, str]]:
        if edge.failing:
            return _error(503, "the broker is not acknowledging appends", {"Retry-After": "1"})
        return Response({"status": "ok"}, media_type=MediaType.JSON)

    @get("/metrics")
    async def metrics() -> Response[bytes]:
        return Response(generate_latest(edge.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @get("/openapi.json")
    async def openapi() -> Response[bytes]:
        return Response(document, media_type=MediaType.JSON)

    limit = RateLimitConfig(rate_limit=("second", rate_per_s), exclude=["/health"])
    return Litestar(
        route_handlers=[commands, health, metrics, openapi],
        middleware=[limit.middleware],
        exception_handlers={HTTPException: _http_error, Exception: _failed},
        openapi_config=None,
        debug=False,
        pdb_on_exception=False,
        logging_config=None,
        request_max_body_size=None,  # the guard bounds bodies before routing
    )


def _error(
    status: int, message: str, headers: dict[str, str] | None = None
) -> Response[dict[str, str]]:
    return Response(
        {"error": message}, status_code=status, media_type=MediaType.JSON, headers=headers
    )


def _http_error(request: Request, exc: HTTPException) -> Response[dict[str, str]]:
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 429:
        headers["Retry-After"] = headers.get("RateLimit-Reset", "1")
        return _error(429, "over this client's request rate; retry after a second", headers)
    return _error(exc.status_code, exc.detail, headers)


def _failed(request: Request, exc: Exception) -> Response[dict[str, str]]:
    log.error("the edge failed on %s %s", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal error; the edge's log has the details")
