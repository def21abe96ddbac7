"""`validate`: the command's `data` must match the schema of its type and version.

Over a batch, one `msgspec.convert` checks every command's type, version and data against a
tagged union of the registry's schemas, and C-level maps check keys and event times; a batch
with any command that fails is validated a command at a time (`check_command`, shared with the
edge), so every reject is the one `apply` gives.
"""

from __future__ import annotations

from functools import reduce
from operator import attrgetter, eq, or_
from typing import Any, Literal

import msgspec

from commands.schemas import SchemaRegistry, check_command
from core.envelope import Envelope, Rejected
from core.outputs import Output
from operators.base import Stateless
from operators.code import load
from operators.durations import millis
from operators.registry import register_filter


class ValidateParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: "module:attribute" of the SchemaRegistry of your commands (the orders demo's:
    #: examples.orders.schemas:SCHEMAS)
    schemas: str
    #: the record's key must be the aggregate id (what keeps an aggregate on one partition)
    require_key: bool = True
    #: how far event time may run ahead of the record's log time
    max_future: str | int = "1h"


def load_schemas(ref: str) -> SchemaRegistry:
    registry = load(ref)
    if not isinstance(registry, SchemaRegistry):
        raise ValueError(f"{ref!r} does not name a SchemaRegistry (give 'module:attribute')")
    return registry


_command = attrgetter("command")
_record = attrgetter("record")
_key = attrgetter("key")
_timestamp = attrgetter("timestamp")
_aggregate_id = attrgetter("aggregate_id")
_ts = attrgetter("ts")
_kind_and_data = attrgetter("type", "v", "data")
#: commands checked at once: what one chunk converts stays in the CPU's caches
_CHUNK = 256


def _batch_schema(registry: SchemaRegistry) -> tuple[Any, str | None] | None:
    """`list` of a union, tagged by type, of `[type, v, data]` rows of the registry's schemas,
    and the key field they share; None where one union cannot say it (a type with several
    versions, schemas naming different key fields): those registries' batches go a command at
    a time."""
    schemas = [registry.get(t, v) for t in registry.types() for v in registry.versions(t)]
    if not schemas or len({s.type for s in schemas}) < len(schemas):
        return None
    key_fields = {s.key_field for s in schemas}
    if len(key_fields) > 1:
        return None
    rows = tuple(
        msgspec.defstruct(
            f"Validated{n}",
            [("v", Literal[s.v]), ("data", s.data)],
            tag_field="type",
            tag=s.type,
            array_like=True,
            frozen=True,
            gc=False,
        )
        for n, s in enumerate(schemas)
        if s is not None
    )
    return list[reduce(or_, rows)], key_fields.pop()  # type: ignore[misc]


@register_filter("validate", params=ValidateParams)
class Validate(Stateless):
    """Rejects unknown types, unsupported versions and data that breaks its schema."""

    def __init__(self, step_id: str, params: ValidateParams) -> None:
        self.step_id = step_id
        self._schemas = load_schemas(params.schemas)
        self._require_key = params.require_key
        self._max_future = millis(params.max_future, "max_future")
        self._batch_schema = _batch_schema(self._schemas)

    def apply(self, envelope: Envelope) -> Envelope | Rejected:
        refusal = check_command(
            self._schemas,
            envelope.command,
            envelope.record.key,
            envelope.record.timestamp,
            self._max_future,
            self._require_key,
        )
        if refusal is not None:
            return self.reject(envelope, refusal.reason, refusal.detail)
        return envelope

    def apply_batch(self, batch: list[Envelope]) -> list[Output]:
        if self._batch_schema is None:
            return [self._guarded(e) for e in batch]
        out: list[Output] = []
        for start in range(0, len(batch), _CHUNK):
            chunk = batch[start : start + _CHUNK]
            out.extend(chunk if self._passes(chunk) else map(self._guarded, chunk))
        return out

    def _passes(self, batch: list[Envelope]) -> bool:
        """Whether every command of the batch passes `apply` unchanged: the same checks as
        `check_command`, over columns."""
        rows, key_field = self._batch_schema  # type: ignore[misc]
        commands = list(map(_command, batch))
        records = list(map(_record, batch))
        ids = list(map(_aggregate_id, commands))
        if self._require_key and not all(map(eq, map(_key, records), map(str.encode, ids))):
            return False
        if max(map(_ts, commands)) > min(map(_timestamp, records)) + self._max_future:
            return False
        try:
            validated = msgspec.convert(list(map(_kind_and_data, commands)), rows)
        except msgspec.ValidationError:
            return False
        return key_field is None or list(map(attrgetter(f"data.{key_field}"), validated)) == ids

    def _guarded(self, envelope: Envelope) -> Output:
        try:
            return self.apply(envelope)
        except Exception as exc:
            return self.failed(envelope, exc)
