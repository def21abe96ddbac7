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
from itertools import repeat
from typing import Any

from core.envelope import Envelope
from operators.fields import MISSING, Column, check_path, column, getter

Predicate = Callable[[Envelope], bool]
BatchPredicate = Callable[[list[Envelope]], list[bool]]


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
    checks = [_check(path, getter(path), name, bound) for path, name, bound in _tests(condition)]
    if len(checks) == 1:
        return checks[0]
    return lambda e: all(check(e) for check in checks)


def compile_columns(condition: dict[str, Any]) -> BatchPredicate:
    """The same condition over a batch: whether each envelope matches, in order.

    Each test reads its path's column once and runs over it in one comprehension (`eq` and `ne`
    through a C-level `map`), so a batch costs no Python call per envelope and test. It may
    raise where the predicate would only for some envelopes (a later test over one an earlier
    test already failed): the caller then falls back to the predicate, a command at a time.
    """
    checks = [_column_check(column(path), name, bound) for path, name, bound in _tests(condition)]
    if len(checks) == 1:
        return checks[0]
    return lambda batch: list(map(all, zip(*(check(batch) for check in checks), strict=True)))


def _tests(condition: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """The condition's (path, test, bound) triples, each checked; ValueError naming the part
    that is wrong."""
    if not isinstance(condition, dict) or not condition:
        raise ValueError("a condition maps field paths to tests, like {type: {eq: order.paid}}")
    tests: list[tuple[str, str, Any]] = []
    for path, spec in condition.items():
        check_path(path)
        for name, bound in (spec if isinstance(spec, dict) else {"eq": spec}).items():
            if name == "exists" and not isinstance(bound, bool):
                raise ValueError(f"{path}.exists: expected true or false, got {bound!r}")
            if name == "matches":
                _pattern(path, bound)
            elif name != "exists" and name not in _TESTS:
                known = ", ".join([*_TESTS, "exists", "matches"])
                raise ValueError(f"{path}: unknown test {name!r}; use one of {known}")
            if name in ("in", "not_in") and not isinstance(bound, list):
                raise ValueError(f"{path}.{name}: expected a list, got {bound!r}")
            tests.append((path, name, bound))
    return tests


def _pattern(path: str, bound: Any) -> re.Pattern[str]:
    try:
        return re.compile(bound)
    except (re.error, TypeError) as exc:
        raise ValueError(f"{path}.matches: {bound!r} is not a regular expression ({exc})") from None


def _check(path: str, get: Callable[[Envelope], Any], name: str, bound: Any) -> Predicate:
    if name == "exists":
        return lambda e: (get(e) is not MISSING) == bound
    if name == "matches":
        pattern = _pattern(path, bound)
        return lambda e: isinstance(v := get(e), str) and pattern.search(v) is not None
    test = _TESTS[name]
    if name == "ne":
        return lambda e: test(get(e), bound)
    return lambda e: (v := get(e)) is not MISSING and test(v, bound)


def _column_check(values: Column, name: str, bound: Any) -> BatchPredicate:
    if name == "exists":
        return lambda batch: [(v is not MISSING) == bound for v in values(batch)]
    if name == "matches":
        search = _pattern("", bound).search
        return lambda batch: [isinstance(v, str) and search(v) is not None for v in values(batch)]
    if name == "eq":  # MISSING equals no value a spec can give
        return lambda batch: list(map(operator.eq, values(batch), repeat(bound)))
    if name == "ne":
        return lambda batch: list(map(operator.ne, values(batch), repeat(bound)))
    test = _TESTS[name]
    return lambda batch: [v is not MISSING and test(v, bound) for v in values(batch)]
