"""Conditions on fields, as specs write them, compiled into plain functions.

A condition maps field paths to tests; all must hold:

    {type: {eq: order.paid}, order.customer_id: {startswith: "test-"}}

A bare value means `eq`. Tests: eq, ne, in, not_in, startswith, endswith, contains, gt, ge, lt,
le, exists, matches (a regular expression). A missing field fails every test but
`exists: false` and `ne`.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

from core.envelope import Envelope
from operators.fields import MISSING, getter

Predicate = Callable[[Envelope], bool]


def _ordered(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def test(value: Any, bound: Any) -> bool:
        try:
            return bool(op(value, bound))
        except TypeError:
            return False

    return test


_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda v, x: v == x,
    "ne": lambda v, x: v != x,
    "in": lambda v, x: v in x,
    "not_in": lambda v, x: v not in x,
    "startswith": lambda v, x: isinstance(v, str) and v.startswith(x),
    "endswith": lambda v, x: isinstance(v, str) and v.endswith(x),
    "contains": lambda v, x: isinstance(v, str | list | tuple | dict) and x in v,
    "gt": _ordered(operator.gt),
    "ge": _ordered(operator.ge),
    "lt": _ordered(operator.lt),
    "le": _ordered(operator.le),
}


def compile_condition(condition: dict[str, Any]) -> Predicate:
    """A predicate for the condition; ValueError saying which part is wrong otherwise."""
    if not isinstance(condition, dict) or not condition:
        raise ValueError("a condition maps field paths to tests, like {type: {eq: order.paid}}")
    checks: list[Predicate] = []
    for path, spec in condition.items():
        get = getter(path)
        tests = spec if isinstance(spec, dict) else {"eq": spec}
        for name, bound in tests.items():
            checks.append(_check(path, get, name, bound))
    if len(checks) == 1:
        return checks[0]
    return lambda e: all(check(e) for check in checks)


def _check(path: str, get: Callable[[Envelope], Any], name: str, bound: Any) -> Predicate:
    if name == "exists":
        if not isinstance(bound, bool):
            raise ValueError(f"{path}.exists: expected true or false, got {bound!r}")
        return lambda e: (get(e) is not MISSING) == bound
    if name == "matches":
        try:
            pattern = re.compile(bound)
        except (re.error, TypeError) as exc:
            raise ValueError(
                f"{path}.matches: {bound!r} is not a regular expression ({exc})"
            ) from None
        return lambda e: isinstance(v := get(e), str) and pattern.search(v) is not None
    test = _TESTS.get(name)
    if test is None:
        known = ", ".join([*_TESTS, "exists", "matches"])
        raise ValueError(f"{path}: unknown test {name!r}; use one of {known}")
    if name in ("in", "not_in") and not isinstance(bound, list):
        raise ValueError(f"{path}.{name}: expected a list, got {bound!r}")
    if name == "ne":
        return lambda e: test(get(e), bound)
    return lambda e: (v := get(e)) is not MISSING and test(v, bound)
