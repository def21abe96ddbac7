"""`validate`: the command's `data` must match the schema of its type and version."""

from __future__ import annotations

import msgspec

from commands.schemas import SchemaRegistry
from core.envelope import Envelope, Reason, Rejected
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

    def apply(self, envelope: Envelope) -> Envelope | Rejected:
        command = envelope.command
        record = envelope.record
        if self._require_key:
            if record.key is None:
                return self.reject(
                    envelope, Reason.NULL_KEY, "record has no key; key commands by aggregate_id"
                )
            if record.key != command.aggregate_id.encode():
                return self.reject(
                    envelope,
                    Reason.KEY_MISMATCH,
                    f"record key {record.key[:80]!r} is not aggregate_id {command.aggregate_id!r}",
                )
        if command.ts > record.timestamp + self._max_future:
            ahead = (command.ts - record.timestamp) / 1000
            return self.reject(
                envelope,
                Reason.FUTURE_TIME,
                f"event time ts={command.ts} is {ahead:.0f}s ahead of its log time",
            )
        schema = self._schemas.get(command.type, command.v)
        if schema is None:
            versions = self._schemas.versions(command.type)
            if not versions:
                return self.reject(envelope, Reason.UNKNOWN_TYPE, f"unknown type {command.type!r}")
            return self.reject(
                envelope,
                Reason.UNSUPPORTED_VERSION,
                f"{command.type} v{command.v} is not supported (known: {versions})",
            )
        try:
            data = msgspec.convert(command.data, schema.data)
        except msgspec.ValidationError as exc:
            return self.reject(envelope, Reason.INVALID_DATA, f"{command.type}: {exc}")
        if schema.key_field is not None:
            key = getattr(data, schema.key_field)
            if key != command.aggregate_id:
                return self.reject(
                    envelope,
                    Reason.KEY_MISMATCH,
                    f"{schema.key_field}={key!r} but aggregate_id={command.aggregate_id!r}",
                )
        return envelope
