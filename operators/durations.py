"""Durations as specs write them: `500ms`, `30s`, `1m`, `2h`, `1d`, or a number of milliseconds."""

from __future__ import annotations

import re

_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r" *([0-9]+) *(ms|s|m|h|d) *")


def millis(value: str | int, name: str = "duration") -> int:
    """The duration in milliseconds; ValueError naming `name` and the accepted forms."""
    if isinstance(value, bool):
        raise ValueError(f"{name}: {value!r} is not a duration")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{name}: {value} is negative")
        return value
    found = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if found is None:
        raise ValueError(f"{name}: {value!r} is not a duration (use 500ms, 30s, 1m, 2h, 1d)")
    return int(found.group(1)) * _UNITS[found.group(2)]
