"""`redact`: personal data leaves the pipeline hashed or dropped.

It rewrites the command's `data` for every later step and sink (forwarded topics included); the
DLQ keeps raw bytes only for records a step refused. Hashing is salted SHA-256, so a hashed
customer id still groups and joins, but cannot be read back.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import msgspec

from core.envelope import Envelope
from core.outputs import Output
from operators.base import Stateless
from operators.fields import check_path
from operators.registry import register_filter


class RedactParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: paths under `data`, like data.email or data.card.number
    fields: list[str]
    mode: Literal["hash", "drop"] = "hash"
    salt: str = ""


@register_filter("redact", params=RedactParams)
class Redact(Stateless):
    """Hashes or drops fields of the command's data."""

    def __init__(self, step_id: str, params: RedactParams) -> None:
        self.step_id = step_id
        self._paths = []
        for path in params.fields:
            segments = check_path(path)
            if segments[0] != "data" or len(segments) < 2:
                raise ValueError(f"fields: {path!r} is not under data (redact rewrites data only)")
            self._paths.append(segments[1:])
        self._mode = params.mode
        self._salt = params.salt.encode()

    def hash(self, value: Any) -> str:
        return hashlib.sha256(self._salt + str(value).encode()).hexdigest()[:32]

    def apply(self, envelope: Envelope) -> Output:
        data = envelope.command.data
        changed = None
        for path in self._paths:
            if not _has(data, path):
                continue
            changed = changed if changed is not None else _copy_along(data, self._paths)
            parent = changed
            for segment in path[:-1]:
                parent = parent[segment]
            if self._mode == "drop":
                del parent[path[-1]]
            else:
                parent[path[-1]] = self.hash(parent[path[-1]])
        if changed is None:
            return envelope
        command = msgspec.structs.replace(envelope.command, data=changed)
        return Envelope(envelope.record, command, envelope.attrs)


def _has(data: dict[str, Any], path: list[str]) -> bool:
    node: Any = data
    for segment in path:
        if not isinstance(node, dict) or segment not in node:
            return False
        node = node[segment]
    return True


def _copy_along(data: dict[str, Any], paths: list[list[str]]) -> dict[str, Any]:
    """Copy the dicts on the redacted paths, so the original command is never changed."""
    copy = dict(data)
    for path in paths:
        node = copy
        for segment in path[:-1]:
            child = node.get(segment)
            if not isinstance(child, dict):
                break
            node[segment] = dict(child)
            node = node[segment]
    return copy
