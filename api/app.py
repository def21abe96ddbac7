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
- `POST /deployments` `{"spec", "source", "from", "until", "follow", "into"}`: a replay (a
  new deployment), started
- `POST /deployments/{name}/start`, `…/stop`
- `POST /deployments/{name}/skip` `{"partition", "offset"}`: pass over a record no restart gets
  past (it goes to the DLQ as skipped_by_operator), then run again
- `POST /deployments/{name}/member` `{"process", "pid", "partitions", "reports"}`: a member of
  a cluster across hosts asks for the run it joins (`deploy.member`), bringing what it observed
  for the metrics: the answer holds the spec and settings, which only the token's holder may
  read, like every route here
- `POST /query` `{"sql"}` → `{"columns", "types", "rows"}`, through the read-only query path
- `GET /deploy/{pipeline}`, `GET /deploy/{pipeline}/history`
- `POST /deploy/init` `{"spec", "source"}`; `POST /deploy/{pipeline}/promote` `{"force",
  "max_behind", "wait"}` (seconds: the gate, and how long to wait for it), `…/rollback`,
  `…/abort`, `…/cleanup`

The bodies and answers are the Structs of `deploy.model`, which the client decodes too. A spec
that arrives here may name modules only from the runtime's allow-list: the service is told it
came over the API (`Origin.API`).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from pathlib import Path
from typing import Annotated

import anyio.to_thread
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.exceptions import HTTPException, NotFoundException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.params import FromPath, JSONBody, QueryParameter
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from core.errors import CqrsError, NotFound
from deploy.model import (
    BlueGreenState,
    Dashboard,
    DeploymentStatus,
    Empty,
    Health,
    History,
    InitRequest,
    MemberReport,
    MemberRun,
    Origin,
    PromoteRequest,
    QueryRequest,
    ReplayRequest,
    SkipRequest,
)
from deploy.service import Service

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


def create_app(service: Service, metrics_registry: CollectorRegistry, max_threads: int) -> Litestar:
    """The routes over `service`; every spec that arrives here is `Origin.API`."""

    async def bound_threads() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = max_threads

    @get(["/", "/dashboard"], media_type=MediaType.HTML, include_in_schema=False)
    async def page() -> Response[bytes]:
        return Response(PAGE, media_type=MediaType.HTML, headers=PAGE_HEADERS)

    @get("/dashboard/data", sync_to_thread=True)
    def dashboard_data() -> Dashboard:
        return service.dashboard()

    @get("/health")
    async def health() -> Health:
        return service.health()

    @get("/metrics", sync_to_thread=True)
    def metrics() -> Response[bytes]:
        return Response(generate_latest(metrics_registry), media_type=CONTENT_TYPE_LATEST)

    @get("/deployments", sync_to_thread=True)
    def deployments(
        everything: Annotated[bool, QueryParameter(name="all")] = False,
    ) -> list[DeploymentStatus]:
        return service.list_deployments(everything)

    @get("/deployments/{name:str}", sync_to_thread=True)
    def deployment(name: FromPath[str]) -> DeploymentStatus:
        return service.get_deployment(name)

    @post("/deployments", sync_to_thread=True, status_code=200)
    def replay(data: JSONBody[ReplayRequest]) -> DeploymentStatus:
        return service.replay(data, Origin.API)

    @post("/deployments/{name:str}/skip", sync_to_thread=True, status_code=200)
    def skip(name: FromPath[str], data: JSONBody[SkipRequest]) -> DeploymentStatus:
        return service.skip(name, data.partition, data.offset)

    @post("/deployments/{name:str}/member", sync_to_thread=True, status_code=200)
    def member(name: FromPath[str], data: JSONBody[MemberReport]) -> MemberRun:
        return service.member_run(name, data)

    @post("/deployments/{name:str}/{action:str}", sync_to_thread=True, status_code=200)
    def control(
        name: FromPath[str], action: FromPath[str], data: JSONBody[Empty]
    ) -> DeploymentStatus:
        if action not in ("start", "stop"):
            raise NotFoundException(f"no route POST /deployments/{name}/{action}")
        return service.start(name) if action == "start" else service.stop(name)

    @post("/query", sync_to_thread=True, status_code=200)
    def query(data: JSONBody[QueryRequest]) -> dict[str, object]:
        return service.query(data.sql).to_json()

    @get("/deploy/{pipeline:str}", sync_to_thread=True)
    def deploy_state(pipeline: FromPath[str]) -> BlueGreenState:
        return service.deploy_state(pipeline)

    @get("/deploy/{pipeline:str}/history", sync_to_thread=True)
    def deploy_history(pipeline: FromPath[str]) -> History:
        return service.deploy_history(pipeline)

    @post("/deploy/init", sync_to_thread=True, status_code=200)
    def deploy_init(data: JSONBody[InitRequest]) -> BlueGreenState:
        return service.deploy_init(data, Origin.API)

    @post("/deploy/{pipeline:str}/promote", sync_to_thread=True, status_code=200)
    def promote(pipeline: FromPath[str], data: JSONBody[PromoteRequest]) -> BlueGreenState:
        return service.deploy_promote(pipeline, data)

    @post("/deploy/{pipeline:str}/{step:str}", sync_to_thread=True, status_code=200)
    def step(pipeline: FromPath[str], step: FromPath[str], data: JSONBody[Empty]) -> BlueGreenState:
        steps = {
            "rollback": service.deploy_rollback,
            "abort": service.deploy_abort,
            "cleanup": service.deploy_cleanup,
        }
        if step not in steps:
            raise NotFoundException(f"no route POST /deploy/{pipeline}/{step}")
        return steps[step](pipeline)

    return Litestar(
        route_handlers=[
            page,
            dashboard_data,
            health,
            metrics,
            deployments,
            deployment,
            replay,
            skip,
            member,
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
