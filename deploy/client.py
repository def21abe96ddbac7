"""The runtime's HTTP API from the other side: the same calls as the runtime's own, answered
with the same Structs (`deploy.model`), decoded from the JSON the API sends. Every request
carries the runtime's bearer token, read from the data dir (`CQRS_TOKEN` overrides) without
the user doing anything."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any, TypeVar

import msgspec

from core.errors import CqrsError
from deploy.model import (
    BlueGreenState,
    Dashboard,
    DeploymentStatus,
    Health,
    History,
    InitRequest,
    MemberReport,
    MemberRun,
    Origin,
    PromoteRequest,
    QueryRequest,
    QueryResult,
    ReplayRequest,
    SkipRequest,
)
from deploy.settings import Settings
from deploy.token import read_token

T = TypeVar("T")


class RequestRefused(CqrsError):
    """The runtime refused the request; the message says why."""


def connect(settings: Settings, url: str, timeout_s: float = 60.0) -> RuntimeClient:
    """A client of the runtime at `url`, with the data dir's token."""
    return RuntimeClient(url, settings.token or read_token(settings.token_file), timeout_s)


class RuntimeClient:
    """The runtime's operations over HTTP (it implements `deploy.service.Service`)."""

    def __init__(self, url: str, token: str | None = None, timeout_s: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def health(self) -> Health:
        return self._call("GET", "/health", Health)

    def list_deployments(self, everything: bool = False) -> list[DeploymentStatus]:
        path = "/deployments?all=true" if everything else "/deployments"
        return self._call("GET", path, list[DeploymentStatus])

    def get_deployment(self, name: str) -> DeploymentStatus:
        return self._call("GET", f"/deployments/{name}", DeploymentStatus)

    def replay(self, request: ReplayRequest, origin: Origin = Origin.LOCAL) -> DeploymentStatus:
        """`origin` is not sent: the runtime holds every spec that reaches it over HTTP to its
        allow-list."""
        return self._call("POST", "/deployments", DeploymentStatus, request)

    def start(self, name: str) -> DeploymentStatus:
        return self._call("POST", f"/deployments/{name}/start", DeploymentStatus, {})

    def stop(self, name: str) -> DeploymentStatus:
        return self._call("POST", f"/deployments/{name}/stop", DeploymentStatus, {})

    def skip(self, name: str, partition: int, offset: int) -> DeploymentStatus:
        body = SkipRequest(partition, offset)
        return self._call("POST", f"/deployments/{name}/skip", DeploymentStatus, body)

    def member_run(self, name: str, report: MemberReport) -> MemberRun:
        return self._call("POST", f"/deployments/{name}/member", MemberRun, report)

    def query(self, sql: str) -> QueryResult:
        doc = self._call("POST", "/query", dict[str, Any], QueryRequest(sql))
        return QueryResult.from_json(doc)

    def deploy_state(self, pipeline: str) -> BlueGreenState:
        return self._call("GET", f"/deploy/{pipeline}", BlueGreenState)

    def deploy_history(self, pipeline: str) -> History:
        return self._call("GET", f"/deploy/{pipeline}/history", History)

    def deploy_init(self, request: InitRequest, origin: Origin = Origin.LOCAL) -> BlueGreenState:
        """`origin` is not sent (see `replay`)."""
        return self._call("POST", "/deploy/init", BlueGreenState, request)

    def deploy_promote(self, pipeline: str, request: PromoteRequest) -> BlueGreenState:
        """A promote that may `wait` for its gate gets that much longer to answer."""
        patience = self.timeout_s + request.wait
        path = f"/deploy/{pipeline}/promote"
        return self._call("POST", path, BlueGreenState, request, patience)

    def deploy_rollback(self, pipeline: str) -> BlueGreenState:
        return self._call("POST", f"/deploy/{pipeline}/rollback", BlueGreenState, {})

    def deploy_abort(self, pipeline: str) -> BlueGreenState:
        return self._call("POST", f"/deploy/{pipeline}/abort", BlueGreenState, {})

    def deploy_cleanup(self, pipeline: str) -> BlueGreenState:
        return self._call("POST", f"/deploy/{pipeline}/cleanup", BlueGreenState, {})

    def dashboard(self) -> Dashboard:
        return self._call("GET", "/dashboard/data", Dashboard)

    def _call(
        self,
        method: str,
        path: str,
        answer: type[T],
        body: Any = None,
        timeout_s: float | None = None,
    ) -> T:
        raw = call(self.url, self.token, method, path, body, timeout_s or self.timeout_s)
        return msgspec.json.decode(raw, type=answer)


def call(
    url: str,
    token: str | None,
    method: str,
    path: str,
    body: Any = None,
    timeout_s: float = 60.0,
    attempts: int = 5,
) -> bytes:
    """One request (a busy runtime is asked again when it says); the answer's body, or the
    runtime's refusal as an error."""
    data = msgspec.json.encode(body) if body is not None else None
    request = urllib.request.Request(url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", exc.reason)
        except (ValueError, AttributeError):
            message = exc.reason
        if exc.code == 503 and attempts > 1:  # busy: it says when to come back
            retry = exc.headers.get("Retry-After", "1")
            time.sleep(min(5.0, float(retry)) if retry.isascii() and retry.isdigit() else 1)
            return call(url, token, method, path, body, timeout_s, attempts - 1)
        if exc.code in (400, 404):
            raise RequestRefused(message) from None
        if exc.code == 401:
            raise CqrsError(
                f"the runtime at {url} refused the token ({message}); the CLI reads it "
                f"from the data dir's token file unless CQRS_TOKEN is set"
            ) from None
        raise CqrsError(f"runtime at {url} answered {exc.code}: {message}") from None
    except urllib.error.URLError as exc:
        raise CqrsError(f"cannot reach the runtime at {url}: {exc.reason}") from None
