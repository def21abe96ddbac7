"""`validate`: the command's `data` must match the schema of its type and version."""

from __future__ import annotations

from operator import attrgetter

import msgspec

from commands.schemas import SchemaRegistry, check_command
from core.envelope import Envelope, Rejected
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


@register_filter("validate", params=ValidateParams)
class Validate(Stateless):
    """Rejects unknown types, unsupported versions and data that breaks its schema."""

    def __init__(self, step_id: str, params: ValidateParams) -> None:
        self.step_id = step_id
        self._schemas = load_schemas(params.schemas)
        self._require_key = params.require_key
        self._max_future = millis(params.max_future, "max_future")
        # (type, v) -> (data struct, reader of its key field or None), for the batch path
        self._checks = {
            (t, v): (schema.data, attrgetter(schema.key_field) if schema.key_field else None)
            for t in self._schemas.types()
            for v in self._schemas.versions(t)
            if (schema := self._schemas.get(t, v)) is not None
        }

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

    def apply_batch(self, batch: list[Envelope]) -> list[Envelope | Rejected]:
        """`check_command`'s checks inlined, without three calls per command: a command that
        passes them all passes; any other goes through `apply`, which says why it does not."""
        out: list[Envelope | Rejected] = []
        append, apply, checks, convert = out.append, self.apply, self._checks, msgspec.convert
        require_key, max_future = self._require_key, self._max_future
        for envelope in batch:
            command, record = envelope.command, envelope.record
            check = checks.get((command.type, command.v))
            if (
                check is None
                or (require_key and record.key != command.aggregate_id.encode())
                or command.ts > record.timestamp + max_future
            ):
                append(apply(envelope))
                continue
            schema, key_field = check
            try:
                data = convert(command.data, schema)
            except msgspec.ValidationError:
                append(apply(envelope))
                continue
            if key_field is not None and key_field(data) != command.aggregate_id:
                append(apply(envelope))
                continue
            append(envelope)
        return out
