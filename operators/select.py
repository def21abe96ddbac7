"""`select` keeps the commands that match a condition; `drop_if` leaves out those that do.

What is left out is `Skipped` as "filtered": counted, never sent to the DLQ (it is not an
error). See `operators.predicates` for how conditions are written. Over a batch the condition is
tested column by column (`compile_columns`), a command at a time only if that raised.
"""

from __future__ import annotations

from typing import Any

import msgspec

from core.envelope import Envelope
from core.outputs import Output, Skipped
from operators.base import Stateless
from operators.predicates import compile_columns, compile_condition
from operators.registry import register_filter


class ConditionParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    where: dict[str, Any]


@register_filter("select", params=ConditionParams)
class Select(Stateless):
    """Keeps only commands matching `where`."""

    def __init__(self, step_id: str, params: ConditionParams) -> None:
        self.step_id = step_id
        self._matches = compile_condition(params.where)
        self._columns = compile_columns(params.where)
        self._skipped = Skipped(step_id, "filtered")

    def apply(self, envelope: Envelope) -> Output:
        return envelope if self._matches(envelope) else self._skipped

    def apply_batch(self, batch: list[Envelope]) -> list[Output]:
        skipped = self._skipped
        return [e if m else skipped for e, m in zip(batch, self._columns(batch), strict=True)]


@register_filter("drop_if", params=ConditionParams)
class DropIf(Stateless):
    """Leaves out commands matching `where`."""

    def __init__(self, step_id: str, params: ConditionParams) -> None:
        self.step_id = step_id
        self._matches = compile_condition(params.where)
        self._columns = compile_columns(params.where)
        self._skipped = Skipped(step_id, "filtered")

    def apply(self, envelope: Envelope) -> Output:
        return self._skipped if self._matches(envelope) else envelope

    def apply_batch(self, batch: list[Envelope]) -> list[Output]:
        skipped = self._skipped
        return [skipped if m else e for e, m in zip(batch, self._columns(batch), strict=True)]
