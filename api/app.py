"""The runtime's routes, as a Litestar app: bodies validated by msgspec, OpenAPI at
`/schema/openapi.json`, every error answered as `{"error": "…"}`.

Handlers are synchronous (the runtime's calls block on the store and the broker): Litestar runs
them in anyio's worker threads, which `create_app` bounds to the guard's in-flight limit.
Routes (JSON in and out):

- `GET /dashboard` (and `/`): the dashboard page, the one route without a token: it holds no
  data, and asks `GET /dashboard/data` with the token it was handed
- `GET /health`, `GET /metrics` (Prometheus text), `GET /schema/openapi.json`
- `GET /deployments` (live ones; `?all=true` adds the retired and aborted),
  `GET /deployments/{name}` (404 for an unknown name)
- `POST /deployments` `{"spec", "source", "from", "until", "follow", "into"}`: create, start
- `POST /deployments/{name}/start`, `…/stop`
- `POST /deployments/{name}/skip` `{"partition", "offset"}`: pass over a record no restart gets
  past (it goes to the DLQ as skipped_by_operator), then run again
- `POST /query` `{"sql"}` → `{"columns", "types", "rows"}`, through the read-only query path
- `GET /deploy/{pipeline}`, `GET /deploy/{pipeline}/history`
- `POST /deploy/init` `{"spec", "source"}`; `POST /deploy/{pipeline}/promote` `{"force",
  "max_behind", "wait"}` (seconds: the gate, and how long to wait for it), `…/rollback`,
  `…/abort`, `…/cleanup`

A spec that arrives here may name modules only from the runtime's allow-list: the runtime is
told it came over the API (`origin="api"`).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from pathlib import Path
from typing import Annotated, Any, Protocol

import anyio.to_thread
import msgspec
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.exceptions import HTTPException, NotFoundException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.params import FromPath, JSONBody, QueryParameter
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from core.errors import CqrsError, NotFound
from deploy.bluegreen import MAX_BEHIND_S

log = logging.getLogger(__name__)

PAGE = (Path(__file__).resolve().parents[1] / "deploy" / "static" / "dashboard.html").read_bytes()
_SCRIPT = re.search(rb"<script>(.*?)</script>", PAGE, re.S)
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_SCRIPT.group(1) if _SCRIPT else b"").digest())
#: the page runs its own inline script and talks to its own origin, nothing else
PAGE_HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; script-src 'sha256-{_SCRIPT_HASH.decode()}'; "
        "style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
}
MAX_SPEC = 512 * 1024
MAX_PROMOTE_WAIT_S = 300.0  # how long one promote request may wait for its gate
Text = Annotated[str, msgspec.Meta(max_length=MAX_SPEC)]


class Service(Protocol):
    """What the app serves: the runtime (`deploy.runtime.Runtime`)."""

    pid: int
    registry: CollectorRegistry
    bluegreen: Any

    def query(self, sql: str) -> Any: ...
    def status(self, name: str | None = None, everything: bool = False) -> list[dict[str, Any]]: ...
    def create(self, spec_text: str, source: str, **options: Any) -> Any: ...
    def start(self, name: str) -> Any: ...
    def stop(self, name: str) -> Any: ...
    def skip(self, name: str, partition: int, offset: int) -> Any: ...
    def dashboard(self) -> dict[str, Any]: ...


class QueryRequest(msgspec.Struct, forbid_unknown_fields=True):
    sql: Annotated[str, msgspec.Meta(max_length=100_000)]


class CreateRequest(msgspec.Struct, forbid_unknown_fields=True):
    spec: Text
    source: Text = "<request>"
    start: str = msgspec.field(name="from", default="")
    until: str | None = None
    follow: bool = False
    into: str | None = None


class InitRequest(msgspec.Struct, forbid_unknown_fields=True):
    spec: Text
    source: Text = "<request>"


class PromoteRequest(msgspec.Struct, forbid_unknown_fields=True):
    force: bool = False
    max_behind: Annotated[float, msgspec.Meta(ge=0)] = MAX_BEHIND_S
    wait: Annotated[float, msgspec.Meta(ge=0, le=MAX_PROMOTE_WAIT_S)] = 0.0


class SkipRequest(msgspec.Struct, forbid_unknown_fields=True):
    partition: Annotated[int, msgspec.Meta(ge=0)]
    offset: Annotated[int, msgspec.Meta(ge=0)]


class Empty(msgspec.Struct, forbid_unknown_fields=True):
    """The body of a step that takes no options: `{}`."""


def create_app(service: Service, max_threads: int) -> Litestar:
    async def bound_threads() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = max_threads

    @get(["/", "/dashboard"], media_type=MediaType.HTML, include_in_schema=False)
    async def page() -> Response[bytes]:
        return Response(PAGE, media_type=MediaType.HTML, headers=PAGE_HEADERS)

    @get("/dashboard/data", sync_to_thread=True)
    def dashboard_data() -> dict[str, Any]:
        return service.dashboard()

    @get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "pid": service.pid}

    @get("/metrics", sync_to_thread=True)
    def metrics() -> Response[bytes]:
        return Response(generate_latest(service.registry), media_type=CONTENT_TYPE_LATEST)

    @get("/deployments", sync_to_thread=True)
    def deployments(
        everything: Annotated[bool, QueryParameter(name="all")] = False,
    ) -> list[dict[str, Any]]:
        return service.status(everything=everything)

    @get("/deployments/{name:str}", sync_to_thread=True)
    def deployment(name: FromPath[str]) -> dict[str, Any]:
        return service.status(name)[0]

    @post("/deployments", sync_to_thread=True, status_code=200)
    def create(data: JSONBody[CreateRequest]) -> dict[str, Any]:
        record = service.create(
            data.spec, data.source, start=data.start, until=data.until, follow=data.follow,
            into=data.into, origin="api",
        )  # fmt: skip
        return service.status(record.name)[0]

    @post("/deployments/{name:str}/skip", sync_to_thread=True, status_code=200)
    def skip(name: FromPath[str], data: JSONBody[SkipRequest]) -> dict[str, Any]:
        return service.status(service.skip(name, data.partition, data.offset).name)[0]

    @post("/deployments/{name:str}/{action:str}", sync_to_thread=True, status_code=200)
    def control(
        name: FromPath[str], action: FromPath[str], data: JSONBody[Empty]
    ) -> dict[str, Any]:
        if action not in ("start", "stop"):
            raise NotFoundException(f"no route POST /deployments/{name}/{action}")
        record = service.start(name) if action == "start" else service.stop(name)
        return service.status(record.name)[0]

    @post("/query", sync_to_thread=True, status_code=200)
    def query(data: JSONBody[QueryRequest]) -> dict[str, Any]:
        return service.query(data.sql).to_json()

    @get("/deploy/{pipeline:str}", sync_to_thread=True)
    def deploy_state(pipeline: FromPath[str]) -> dict[str, Any]:
        return service.bluegreen.state(pipeline)

    @get("/deploy/{pipeline:str}/history", sync_to_thread=True)
    def deploy_history(pipeline: FromPath[str]) -> dict[str, Any]:
        return service.bluegreen.history(pipeline)

    @post("/deploy/init", sync_to_thread=True, status_code=200)
    def deploy_init(data: JSONBody[InitRequest]) -> dict[str, Any]:
        return service.bluegreen.init(data.spec, data.source, origin="api")

    @post("/deploy/{pipeline:str}/promote", sync_to_thread=True, status_code=200)
    def promote(pipeline: FromPath[str], data: JSONBody[PromoteRequest]) -> dict[str, Any]:
        return service.bluegreen.promote(pipeline, data.force, data.max_behind, data.wait)

    @post("/deploy/{pipeline:str}/{step:str}", sync_to_thread=True, status_code=200)
    def step(pipeline: FromPath[str], step: FromPath[str], data: JSONBody[Empty]) -> dict[str, Any]:
        if step not in ("rollback", "abort", "cleanup"):
            raise NotFoundException(f"no route POST /deploy/{pipeline}/{step}")
        return getattr(service.bluegreen, step)(pipeline)

    return Litestar(
        route_handlers=[
            page,
            dashboard_data,
            health,
            metrics,
            deployments,
            deployment,
            create,
            skip,
            control,
            query,
            deploy_state,
            deploy_history,
            deploy_init,
            promote,
            step,
        ],
        exception_handlers={CqrsError: _refused, HTTPException: _http_error, Exception: _failed},
        openapi_config=OpenAPIConfig(
            title="cqrs-streams runtime",
            version="1",
            path="/schema",
            render_plugins=[JsonRenderPlugin()],
        ),
        on_startup=[bound_threads],
        debug=False,
        pdb_on_exception=False,
        logging_config=None,
        request_max_body_size=None,  # the guard bounds bodies before routing
    )


def _error(status: int, message: str) -> Response[dict[str, str]]:
    return Response({"error": message}, status_code=status, media_type=MediaType.JSON)


def _refused(request: Request, exc: CqrsError) -> Response[dict[str, str]]:
    return _error(404 if isinstance(exc, NotFound) else 400, str(exc))


def _http_error(request: Request, exc: HTTPException) -> Response[dict[str, str]]:
    message = exc.detail
    if exc.status_code == 400 and not message.startswith("Validation failed"):
        message = f"the body is not the JSON this route takes: {message}"
    if exc.extra:
        problems = exc.extra if isinstance(exc.extra, list) else [exc.extra]
        message += ": " + "; ".join(
            f"{p.get('key', '')}: {p.get('message', '')}" if isinstance(p, dict) else str(p)
            for p in problems
        )
    headers = getattr(exc, "headers", None) or {}
    response = _error(exc.status_code, message)
    response.headers.update(headers)
    return response


def _failed(request: Request, exc: Exception) -> Response[dict[str, str]]:
    log.error("the API failed on %s %s", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal error; the runtime's log has the details")
