"""Where a replay starts and stops, as users write it on the command line.

`--from`: `earliest`, `latest`, a time (ISO 8601, or epoch milliseconds), or explicit offsets
`partition:offset,…`. `--until`: a time, or `now`. Both are resolved against the broker into
concrete offsets when the deployment is created, so a resumed replay covers exactly the range
it started with.
"""

from __future__ import annotations

import datetime as dt
import re
import time

from commands.log import CommandLog
from core.errors import ConfigError
from dataflows.source import StartAt

_OFFSETS = re.compile(r"[0-9]+:[0-9]+(,[0-9]+:[0-9]+)*")
_FROM_FORMS = "earliest, latest, a time (2026-01-01T12:00:00Z or epoch ms), or 0:120,1:98"


def parse_time(text: str, flag: str) -> int:
    """Epoch milliseconds from ISO 8601 (UTC unless it says otherwise) or a number."""
    if text.isascii() and text.isdigit():
        return int(text)
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{flag} {text!r} is not a time: give ISO 8601 (2026-01-01T12:00:00Z) or epoch "
            f"milliseconds"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)


def parse_from(text: str) -> StartAt:
    if text in ("earliest", "latest"):
        return StartAt(text)
    if _OFFSETS.fullmatch(text):
        offsets = {}
        for pair in text.split(","):
            partition, offset = (int(x) for x in pair.split(":"))
            if partition in offsets:
                raise ConfigError(f"--from {text!r} names partition {partition} twice")
            offsets[partition] = offset
        return StartAt("offsets", offsets=offsets)
    if (text.isascii() and text.isdigit()) or re.match(r"[0-9]{4}-[0-9][0-9]-[0-9][0-9]", text):
        return StartAt("timestamp", timestamp_ms=parse_time(text, "--from"))
    raise ConfigError(f"--from {text!r} is not a start: give {_FROM_FORMS}")


def parse_until(text: str) -> int:
    """The time bound in epoch milliseconds (`now` is the current time)."""
    return int(time.time() * 1000) if text == "now" else parse_time(text, "--until")


def resolve(
    log: CommandLog, start: StartAt, until_ms: int | None
) -> tuple[dict[int, int], dict[int, int] | None]:
    """Concrete (start offsets, stop offsets); stop is None to tail. Offsets outside the log,
    unknown partitions and an empty range are refused."""
    partitions = log.partitions()
    begin, end = log.beginning_offsets(), log.end_offsets()
    if start.offsets is not None:
        unknown = sorted(set(start.offsets) - set(partitions))
        if unknown:
            raise ConfigError(f"--from names partitions {unknown}; {log.topic} has {partitions}")
        for p, offset in start.offsets.items():
            if not begin[p] <= offset <= end[p]:
                raise ConfigError(
                    f"--from {p}:{offset} is outside partition {p}, which holds offsets "
                    f"{begin[p]} to {end[p] - 1}"
                )
    starts = {p: start.resolve(log, p) for p in partitions}
    if until_ms is None:
        return starts, None
    after = log.offsets_for_time(until_ms + 1)  # the first record logged after the bound
    stops = {p: max(starts[p], min(after[p], end[p])) for p in partitions}
    return starts, stops
