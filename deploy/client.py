"""The CLI's side of the runtime's HTTP API. Every request carries the runtime's bearer token,
read from the data dir (`CQRS_TOKEN` overrides) without the user doing anything."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from api.token import read_token
from core.errors import CqrsError
from deploy.query import QueryResult
from deploy.settings import Settings


class RequestRefused(CqrsError):
    """The runtime refused the request; the message says why."""


def connect(settings: Settings, url: str) -> RuntimeClient:
    """A client of the runtime at `url`, with the data dir's token."""
    return RuntimeClient(url, settings.token or read_token(settings.token_file))


class RuntimeClient:
    def __init__(self, url: str, token: str | None = None, timeout_s: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def query(self, sql: str) -> QueryResult:
        return QueryResult.from_json(self._call("POST", "/query", {"sql": sql}))

    def deployments(self, everything: bool = False) -> list[dict[str, Any]]:
        return self._call("GET", "/deployments?all=true" if everything else "/deployments")

    def deployment(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/deployments/{name}")

    def create(self, **request: Any) -> dict[str, Any]:
        return self._call("POST", "/deployments", request)

    def start(self, name: str) -> dict[str, Any]:
        return self._call("POST", f"/deployments/{name}/start", {})

    def stop(self, name: str) -> dict[str, Any]:
        return self._call("POST", f"/deployments/{name}/stop", {})

    def skip(self, name: str, partition: int, offset: int) -> dict[str, Any]:
        return self._call(
            "POST", f"/deployments/{name}/skip", {"partition": partition, "offset": offset}
        )

    def deploy_init(self, spec: str, source: str) -> dict[str, Any]:
        return self._call("POST", "/deploy/init", {"spec": spec, "source": source})

    def deploy_step(self, pipeline: str, step: str, **options: Any) -> dict[str, Any]:
        """One blue/green step; a promote that may `wait` for its gate gets that much longer
        to answer."""
        patience = self.timeout_s + float(options.get("wait", 0))
        return self._call("POST", f"/deploy/{pipeline}/{step}", options, patience)

    def deploy_state(self, pipeline: str) -> dict[str, Any]:
        return self._call("GET", f"/deploy/{pipeline}")

    def deploy_history(self, pipeline: str) -> dict[str, Any]:
        return self._call("GET", f"/deploy/{pipeline}/history")

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        timeout_s: float | None = None,
        attempts: int = 5,
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s or self.timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error", exc.reason)
            except (ValueError, AttributeError):
                message = exc.reason
            if exc.code == 503 and attempts > 1:  # busy: it says when to come back
                retry = exc.headers.get("Retry-After", "1")
                time.sleep(min(5.0, float(retry)) if retry.isascii() and retry.isdigit() else 1)
                return self._call(method, path, body, timeout_s, attempts - 1)
            if exc.code in (400, 404):
                raise RequestRefused(message) from None
            if exc.code == 401:
                raise CqrsError(
                    f"the runtime at {self.url} refused the token ({message}); the CLI reads it "
                    f"from the data dir's token file unless CQRS_TOKEN is set"
                ) from None
            raise CqrsError(f"runtime at {self.url} answered {exc.code}: {message}") from None
        except urllib.error.URLError as exc:
            raise CqrsError(f"cannot reach the runtime at {self.url}: {exc.reason}") from None
