"""Typed schemas for the `data` of each command type and version.

A registry maps `(type, v)` to a msgspec struct. The `validate` filter converts `data` with it,
so a schema violation names the field (`$.items[0].qty`) in the rejection it produces.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import msgspec

from core.envelope import Command, Reason


class Schema(msgspec.Struct, frozen=True):
    """The shape of one command type at one version; `key_field`, if set, must equal the
    envelope's `aggregate_id` (so a command cannot land on another aggregate's partition)."""

    type: str
    v: int
    data: type[msgspec.Struct]
    key_field: str | None = None


class SchemaRegistry:
    """The schemas a pipeline accepts; registering the same `(type, v)` twice is an error."""

    def __init__(self, name: str, schemas: Iterable[Schema] = ()) -> None:
        self.name = name
        self._by_key: dict[tuple[str, int], Schema] = {}
        for schema in schemas:
            self.register(schema)

    def register(self, schema: Schema) -> None:
        key = (schema.type, schema.v)
        if key in self._by_key:
            raise ValueError(f"schema {schema.type} v{schema.v} is registered twice in {self.name}")
        self._by_key[key] = schema

    def get(self, type_: str, v: int) -> Schema | None:
        return self._by_key.get((type_, v))

    def versions(self, type_: str) -> list[int]:
        return sorted(v for (t, v) in self._by_key if t == type_)

    def types(self) -> list[str]:
        return sorted({t for (t, _) in self._by_key})


class Refusal(NamedTuple):
    """Why a command breaks its schema: the reason code and a detail naming the field."""

    reason: Reason
    detail: str


def check_command(
    registry: SchemaRegistry,
    command: Command,
    key: bytes | None,
    log_time_ms: int,
    max_future_ms: int,
    require_key: bool = True,
) -> Refusal | None:
    """The one check of a command against its schema, shared by the `validate` filter (against
    the record's log time) and the edge (against its own clock, before the command is logged):
    a command the edge accepts is one the filter passes."""
    if require_key:
        if key is None:
            return Refusal(Reason.NULL_KEY, "record has no key; key commands by aggregate_id")
        if key != command.aggregate_id.encode():
            return Refusal(
                Reason.KEY_MISMATCH,
                f"record key {key[:80]!r} is not aggregate_id {command.aggregate_id!r}",
            )
    if command.ts > log_time_ms + max_future_ms:
        ahead = (command.ts - log_time_ms) / 1000
        return Refusal(
            Reason.FUTURE_TIME, f"event time ts={command.ts} is {ahead:.0f}s ahead of its log time"
        )
    schema = registry.get(command.type, command.v)
    if schema is None:
        versions = registry.versions(command.type)
        if not versions:
            return Refusal(Reason.UNKNOWN_TYPE, f"unknown type {command.type!r}")
        return Refusal(
            Reason.UNSUPPORTED_VERSION,
            f"{command.type} v{command.v} is not supported (known: {versions})",
        )
    try:
        data = msgspec.convert(command.data, schema.data)
    except msgspec.ValidationError as exc:
        return Refusal(Reason.INVALID_DATA, f"{command.type}: {exc}")
    if schema.key_field is not None:
        found = getattr(data, schema.key_field)
        if found != command.aggregate_id:
            return Refusal(
                Reason.KEY_MISMATCH,
                f"{schema.key_field}={found!r} but aggregate_id={command.aggregate_id!r}",
            )
    return None
