"""`validate`: the command's `data` must match the schema of its type and version.

Over a batch, the commands of each type and version have their data converted in one msgspec
call (a Python call per command was half of this step's cost), and only a command that does not
plainly pass (no schema, a wrong key, too far ahead, in a group whose conversion failed) goes
through `check_command` on its own, which says why. The screen may hold back a command that
passes, never let through one that does not: the property tests hold the two paths equal.
"""

from __future__ import annotations

import operator
from functools import cache
from itertools import compress
from operator import attrgetter
from typing import Any

import msgspec

from commands.schemas import Schema, SchemaRegistry, check_command
from core.envelope import Command, Envelope, Rejected
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

    def apply_batch(self, batch: list[Envelope]) -> list[Output]:
        get, max_future, require_key = self._schemas.get, self._max_future, self._require_key
        schemas: dict[tuple[str, int], Schema | None] = {}
        groups: dict[tuple[str, int], list[int]] = {}
        checked: list[int] = []
        for i, envelope in enumerate(batch):
            command, record = envelope.command, envelope.record
            kind = (command.type, command.v)
            members = groups.get(kind)
            if members is None:
                schemas[kind] = get(*kind)
                members = groups[kind] = [] if schemas[kind] is not None else checked
            if (require_key and record.key != command.aggregate_id.encode()) or (
                command.ts > record.timestamp + max_future
            ):
                checked.append(i)
            else:
                members.append(i)
        commands = [e.command for e in batch]
        for kind, members in groups.items():
            schema = schemas[kind]
            if schema is not None and members:
                checked.extend(self._refused(schema, [commands[i] for i in members], members))
        outputs: list[Output] = list(batch)
        for i in checked:
            outputs[i] = self.apply(batch[i])
        return outputs

    def _refused(self, schema: Schema, group: list[Command], members: list[int]) -> list[int]:
        """Which of a group of one schema may not pass: all of them if one's data breaks it."""
        try:
            converted = msgspec.convert(list(map(_data, group)), _list_of(schema.data))
        except msgspec.ValidationError:
            return members
        if schema.key_field is None:
            return []
        found = map(attrgetter(schema.key_field), converted)
        return list(compress(members, map(operator.ne, found, map(_aggregate_id, group))))


_aggregate_id, _data = attrgetter("aggregate_id"), attrgetter("data")


@cache
def _list_of(data: type) -> Any:
    """`list[data]`, made once per schema's struct."""
    return list[data]  # type: ignore[valid-type]
