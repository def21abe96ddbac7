"""`upcast`: turns an older version of a command into the current shape, so old commands still
replay after a schema change. Rules chain: v1→v2 then v2→v3.

A rule renames, sets and drops fields of `data`, or calls a function (`module:function`, taking
and returning the data dict) for what a declaration cannot say. A rule that cannot apply (a
renamed field is missing) rejects the command with the rule in the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import msgspec

from core.envelope import Envelope, Reason
from core.outputs import Output
from operators.base import Stateless
from operators.code import CodeRefused, load
from operators.registry import register_filter


class UpcastRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    type: str
    from_v: Annotated[int, msgspec.Meta(ge=1)] = msgspec.field(name="from")
    to_v: Annotated[int, msgspec.Meta(ge=2)] = msgspec.field(name="to")
    rename: dict[str, str] = {}
    set: dict[str, Any] = {}
    drop: list[str] = []
    function: str = ""


class UpcastParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    rules: list[UpcastRule]


def _load_function(ref: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    try:
        fn = load(ref)
    except CodeRefused as exc:
        raise CodeRefused(f"function: {exc}") from None
    except ValueError as exc:
        fn, why = None, f": {exc}"
    else:
        why = ""
    if not callable(fn):
        raise ValueError(
            f"function: {ref!r} does not name a function (give 'module:function'){why}"
        )
    return fn


@register_filter("upcast", params=UpcastParams)
class Upcast(Stateless):
    """Rewrites older command versions into the current one."""

    def __init__(self, step_id: str, params: UpcastParams) -> None:
        self.step_id = step_id
        self._rules: dict[tuple[str, int], UpcastRule] = {}
        self._functions: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}
        for i, rule in enumerate(params.rules):
            if rule.to_v <= rule.from_v:
                raise ValueError(
                    f"rules[{i}]: `to` ({rule.to_v}) must be above `from` ({rule.from_v})"
                )
            key = (rule.type, rule.from_v)
            if key in self._rules:
                raise ValueError(f"rules[{i}]: {rule.type} v{rule.from_v} has two rules")
            self._rules[key] = rule
            if rule.function:
                self._functions[key] = _load_function(rule.function)

    def apply(self, envelope: Envelope) -> Output:
        command = envelope.command
        key = (command.type, command.v)
        if key not in self._rules:
            return envelope
        data = command.data
        version = command.v
        while key in self._rules:
            rule = self._rules[key]
            try:
                data = self._upcast(rule, data, self._functions.get(key))
            except (KeyError, TypeError, ValueError) as exc:
                detail = f"{rule.type} v{rule.from_v}→v{rule.to_v}: {exc!r}"
                return self.reject(envelope, Reason.UPCAST_FAILED, detail)
            version = rule.to_v
            key = (rule.type, version)
        upcast = msgspec.structs.replace(command, v=version, data=data)
        return Envelope(envelope.record, upcast, envelope.attrs)

    @staticmethod
    def _upcast(
        rule: UpcastRule,
        data: dict[str, Any],
        function: Callable[[dict[str, Any]], dict[str, Any]] | None,
    ) -> dict[str, Any]:
        data = dict(data)
        for old, new in rule.rename.items():
            if old not in data:
                raise KeyError(f"field {old!r} to rename is missing")
            data[new] = data.pop(old)
        for field in rule.drop:
            data.pop(field, None)
        data.update(rule.set)
        if function is not None:
            data = function(data)
            if not isinstance(data, dict):
                raise TypeError("the upcast function must return the data dict")
        return data
