"""Kubernetes' OpenAPI document (swagger.json, shipped in the k8s.io/kubernetes Go module) to one
JSON schema per kind, named as kubeconform looks them up (`{kind}{-group-version}.json`).

kubeconform fetches such schemas from the web by default, which the test machines cannot reach;
this makes them offline from a pinned Kubernetes release (the Makefile runs it once). Each file
holds its kind's schema and the definitions it reaches, with local references (so recursive
types stay finite), made strict: an object with declared properties accepts no others, so a
misspelt field is an error, as `kubectl apply --validate=strict` would say.

Usage: python deploy/k8s/schemas.py SWAGGER_JSON OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

_PREFIX = "#/definitions/"
#: value kinds a manifest may write as a number or a string (`cpu: 2`, `port: http`)
_LOOSE = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": ["string", "integer"]},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": ["string", "number"]},
}


def strict(schema: Any) -> Any:
    """References made local, and objects closed to properties they do not declare."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items() if not k.startswith("x-")}
    if "properties" in schema and "additionalProperties" not in schema:
        out["additionalProperties"] = False
    return out


def reachable(definitions: dict[str, Any], root: str) -> set[str]:
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_refs(definitions[name]))
    return seen


def _refs(schema: Any) -> list[str]:
    if isinstance(schema, list):
        return [r for item in schema for r in _refs(item)]
    if not isinstance(schema, dict):
        return []
    found = [r for v in schema.values() for r in _refs(v)]
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(_PREFIX):
        found.append(ref.removeprefix(_PREFIX))
    return found


def file_name(kind: str, group: str, version: str) -> str:
    """kubeconform's `{{ .ResourceKind }}{{ .KindSuffix }}.json` for this kind."""
    suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
    return f"{kind.lower()}{suffix.lower()}.json"


def convert(swagger: dict[str, Any], out: Path) -> int:
    definitions = {**swagger["definitions"], **_LOOSE}
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for name, schema in swagger["definitions"].items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            if "apiVersion" not in schema.get("properties", {}):
                continue  # a part of an API, not a resource a manifest declares
            used = sorted(reachable(definitions, name) - {name})
            document = strict(schema) | {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "definitions": {n: strict(definitions[n]) for n in used},
            }
            path = out / file_name(gvk["kind"], gvk["group"], gvk["version"])
            path.write_text(json.dumps(document, separators=(",", ":")))
            written += 1
    return written


if __name__ == "__main__":
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    count = convert(json.loads(source.read_text()), target)
    print(f"{count} Kubernetes schemas from {source} in {target}")
