"""`route`: sends commands to chosen projections by condition.

The first matching route names the projections (tables or topics) that receive the command;
with none matching, `default` does (an empty default sends it nowhere). Projections of a
pipeline without a `route` step receive every command.
"""

from __future__ import annotations

from typing import Any

import msgspec

from core.envelope import Envelope
from core.outputs import Output
from operators.base import Stateless
from operators.predicates import compile_condition
from operators.registry import register_filter

ROUTE_ATTR = "route"


class Route(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    when: dict[str, Any]
    to: list[str]


class RouteParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    routes: list[Route]
    default: list[str] = []


@register_filter("route", params=RouteParams)
class RouteFilter(Stateless):
    """Chooses which projections receive each command."""

    def __init__(self, step_id: str, params: RouteParams) -> None:
        self.step_id = step_id
        self._routes = [(compile_condition(r.when), frozenset(r.to)) for r in params.routes]
        self._default = frozenset(params.default)
        self.targets = frozenset().union(self._default, *(to for _, to in self._routes))

    def apply(self, envelope: Envelope) -> Output:
        for matches, targets in self._routes:
            if matches(envelope):
                return envelope.with_attrs(**{ROUTE_ATTR: targets})
        return envelope.with_attrs(**{ROUTE_ATTR: self._default})
