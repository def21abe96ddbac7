"""`select` keeps the commands that match a condition; `drop_if` leaves out those that do.

What is left out is `Skipped` as "filtered": counted, never sent to the DLQ (it is not an
error). See `operators.predicates` for how conditions are written.
"""

from __future__ import annotations

from typing import Any

import msgspec

from core.envelope import Envelope
from core.outputs import Output, Skipped
from operators.base import Stateless
from operators.predicates import compile_condition
from operators.registry import register_filter


class ConditionParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    where: dict[str, Any]


@register_filter("select", params=ConditionParams)
class Select(Stateless):
    """Keeps only commands matching `where`."""

    def __init__(self, step_id: str, params: ConditionParams) -> None:
        self.step_id = step_id
        self._matches = compile_condition(params.where)
        self._skipped = Skipped(step_id, "filtered")

    def apply(self, envelope: Envelope) -> Output:
        return envelope if self._matches(envelope) else self._skipped


@register_filter("drop_if", params=ConditionParams)
class DropIf(Stateless):
    """Leaves out commands matching `where`."""

    def __init__(self, step_id: str, params: ConditionParams) -> None:
        self.step_id = step_id
        self._matches = compile_condition(params.where)
        self._skipped = Skipped(step_id, "filtered")

    def apply(self, envelope: Envelope) -> Output:
        return self._skipped if self._matches(envelope) else envelope
