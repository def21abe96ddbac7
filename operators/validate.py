"""`validate`: the command's `data` must match the schema of its type and version."""

from __future__ import annotations

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
