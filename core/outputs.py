"""What a step can output, and what one batch of one partition produced for the sinks.

A filter's output is the same or a changed `Envelope`, a `Rejected` (to the DLQ), a `Skipped`
(left out on purpose), or, from a projector, a `Projected` row or a `Forwarded` record. The
types live here, below both the filters that make them and the sinks that write them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from core.envelope import Envelope, Rejected


class Projected(msgspec.Struct, frozen=True, gc=False):
    """A row for a projection table, with the log position it derives from."""

    partition: int
    offset: int
    row: tuple[Any, ...]


class Forwarded(msgspec.Struct, frozen=True, gc=False):
    """A record for a downstream topic, with the log position it derives from."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes


class Skipped(msgspec.Struct, frozen=True, gc=False):
    """Left out on purpose: `why` is "filtered" or "deduplicated"."""

    step: str
    why: str


Output = Envelope | Rejected | Skipped | Projected | Forwarded


@dataclass
class BatchOutput:
    """What one batch of one partition produced, for the sinks: per projection, the items its
    output picked (rows for a table, records for a topic), and every reject."""

    partition: int
    first_offset: int
    #: the offset before the source's position: every offset up to it is done, including the
    #: transaction markers and aborted records the source passed without returning them
    last_offset: int
    #: log time of the batch's newest record (0: none): the sinks measure latency from it
    last_log_time: int
    items: dict[str, list[Any]] = field(default_factory=dict)
    rejects: list[Rejected] = field(default_factory=list)
