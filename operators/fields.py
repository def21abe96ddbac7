"""Field paths: how specs point into a command and what filters derived about it.

`id`, `type`, `aggregate_id`, `ts`, `v` are the envelope's fields; `data.x.y` walks the command's
data; `log.partition`, `log.offset`, `log.timestamp` are the record's position; any other first
name is an attribute a filter derived (`order.region` is the `region` of the order state that
`order_state` attached). A path is compiled once into a getter; a missing value is `MISSING`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from operator import attrgetter
from typing import Any

from core.envelope import Envelope

MISSING: Any = type(
    "Missing", (), {"__repr__": lambda self: "MISSING", "__bool__": lambda self: False}
)()

Getter = Callable[[Envelope], Any]
#: a path's values over a batch, in order: what `getter` gives for each envelope
Column = Callable[[list[Envelope]], list[Any]]

COMMAND_FIELDS = ("id", "type", "aggregate_id", "ts", "v")
LOG_FIELDS = ("partition", "offset", "timestamp")
RESERVED = (*COMMAND_FIELDS, "data", "log")
_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_path(path: str) -> list[str]:
    """The path's segments; a ValueError naming what is wrong otherwise."""
    segments = path.split(".")
    for segment in segments:
        if not _SEGMENT.fullmatch(segment):
            raise ValueError(
                f"{path!r} is not a field path (names joined by '.', like data.amount)"
            )
    root = segments[0]
    if root in COMMAND_FIELDS and len(segments) > 1:
        raise ValueError(f"{path!r}: {root} is a plain value, it has no fields")
    if root == "log" and (len(segments) != 2 or segments[1] not in LOG_FIELDS):
        raise ValueError(f"{path!r}: the log has {', '.join('log.' + f for f in LOG_FIELDS)}")
    return segments


def getter(path: str) -> Getter:
    segments = check_path(path)
    root, rest = segments[0], segments[1:]
    if root in COMMAND_FIELDS:
        return lambda e: getattr(e.command, root)
    if root == "log":
        return lambda e: getattr(e.record, rest[0])
    if root == "data":
        return lambda e: _walk(e.command.data, rest)
    return lambda e: _walk(e.attrs.get(root, MISSING), rest)


def column(path: str) -> Column:
    """A path's getter over a whole batch: the envelope's and the record's fields through one
    C-level `map`, the rest in one comprehension rather than a Python call per envelope."""
    segments = check_path(path)
    root, rest = segments[0], segments[1:]
    if root in COMMAND_FIELDS or root == "log":
        get = attrgetter(f"command.{root}" if root in COMMAND_FIELDS else f"record.{rest[0]}")
        return lambda batch: list(map(get, batch))
    if root == "data":
        if len(rest) == 1:
            (name,) = rest
            return lambda batch: [e.command.data.get(name, MISSING) for e in batch]
        return lambda batch: [_walk(e.command.data, rest) for e in batch]
    if not rest:
        return lambda batch: [e.attrs.get(root, MISSING) for e in batch]
    return lambda batch: [_walk(e.attrs.get(root, MISSING), rest) for e in batch]


def _walk(value: Any, segments: list[str]) -> Any:
    for segment in segments:
        if value is MISSING or value is None:
            return MISSING
        if isinstance(value, dict):
            value = value.get(segment, MISSING)
        else:
            value = getattr(value, segment, MISSING)
    return value


def attr_name(name: str) -> str:
    """Check a name a filter may derive into `attrs` (it must not shadow the envelope)."""
    if not _SEGMENT.fullmatch(name) or name in RESERVED:
        raise ValueError(
            f"{name!r} cannot be a derived field: use a plain name other than {', '.join(RESERVED)}"
        )
    return name
