"""`validate`: the command's `data` must match the schema of its type and version."""

from __future__ import annotations

import importlib

import msgspec

from commands.envelope import Envelope, Reason, Rejected
from commands.schemas import SchemaRegistry
from operators.base import Stateless
from operators.registry import register_filter


class ValidateParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: "module:attribute" of a SchemaRegistry
    schemas: str = "commands.orders:SCHEMAS"


def load_schemas(ref: str) -> SchemaRegistry:
    module_name, _, attr = ref.partition(":")
    registry = getattr(importlib.import_module(module_name), attr, None) if attr else None
    if not isinstance(registry, SchemaRegistry):
        raise ValueError(f"{ref!r} does not name a SchemaRegistry (give 'module:attribute')")
    return registry


@register_filter("validate", params=ValidateParams)
class Validate(Stateless):
    """Rejects unknown types, unsupported versions and data that breaks its schema."""

    def __init__(self, step_id: str, params: ValidateParams) -> None:
        self.step_id = step_id
        self._schemas = load_schemas(params.schemas)

    def apply(self, envelope: Envelope) -> Envelope | Rejected:
        command = envelope.command
        schema = self._schemas.get(command.type, command.v)
        if schema is None:
            versions = self._schemas.versions(command.type)
            if not versions:
                return self._reject(envelope, Reason.UNKNOWN_TYPE, f"unknown type {command.type!r}")
            return self._reject(
                envelope,
                Reason.UNSUPPORTED_VERSION,
                f"{command.type} v{command.v} is not supported (known: {versions})",
            )
        try:
            data = msgspec.convert(command.data, schema.data)
        except msgspec.ValidationError as exc:
            return self._reject(envelope, Reason.INVALID_DATA, f"{command.type}: {exc}")
        if schema.key_field is not None:
            key = getattr(data, schema.key_field)
            if key != command.aggregate_id:
                return self._reject(
                    envelope,
                    Reason.KEY_MISMATCH,
                    f"{schema.key_field}={key!r} but aggregate_id={command.aggregate_id!r}",
                )
        return envelope

    def _reject(self, envelope: Envelope, reason: Reason, detail: str) -> Rejected:
        return Rejected(record=envelope.record, step=self.step_id, reason=reason, detail=detail)
