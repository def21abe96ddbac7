"""What deploy/cli.py calls until the CLI is wired to `deploy.service.Service` (issue 14: the
CLI moves to its own package meanwhile; the merge wires it and deletes this module, and the
two methods of `Runtime` marked the same way). Everything here answers JSON documents, as
these calls did before the control plane's state became Structs."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from clickhouse_connect.driver.client import Client

from deploy.bootstrap import service
from deploy.client import call
from deploy.model import QueryResult
from deploy.records import Record
from deploy.settings import Settings
from deploy.specs import Specs
from deploy.status import Behind, EndOffsets
from deploy.status import describe as describe_status
from deploy.token import read_token
from operators.code import AllowList


def describe(
    client: Client,
    record: Record,
    end_offsets: EndOffsets,
    allowed: AllowList,
    measure: Behind | None = None,
) -> dict[str, Any]:
    status = describe_status(client, record, end_offsets, Specs(allowed), measure)
    return msgspec.to_builtins(status)


def query(settings: Settings, sql: str) -> QueryResult:
    return service(settings).query(sql)


def connect(settings: Settings, url: str) -> RuntimeClient:
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
        body = {"partition": partition, "offset": offset}
        return self._call("POST", f"/deployments/{name}/skip", body)

    def deploy_init(self, spec: str, source: str) -> dict[str, Any]:
        return self._call("POST", "/deploy/init", {"spec": spec, "source": source})

    def deploy_step(self, pipeline: str, step: str, **options: Any) -> dict[str, Any]:
        patience = self.timeout_s + float(options.get("wait", 0))
        return self._call("POST", f"/deploy/{pipeline}/{step}", options, patience)

    def deploy_state(self, pipeline: str) -> dict[str, Any]:
        return self._call("GET", f"/deploy/{pipeline}")

    def deploy_history(self, pipeline: str) -> dict[str, Any]:
        return self._call("GET", f"/deploy/{pipeline}/history")

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def _call(self, method: str, path: str, body: Any = None, timeout_s: float = 0.0) -> Any:
        raw = call(self.url, self.token, method, path, body, timeout_s or self.timeout_s)
        return json.loads(raw)
