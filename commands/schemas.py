"""Typed schemas for the `data` of each command type and version.

A registry maps `(type, v)` to a msgspec struct. The `validate` filter converts `data` with it,
so a schema violation names the field (`$.items[0].qty`) in the rejection it produces.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec


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
