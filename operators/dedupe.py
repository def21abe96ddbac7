"""`dedupe`: drops a command whose id was seen before (a producer retry, a double send).

Ids are remembered per log partition (a retried command carries its aggregate's key, so it
lands on the same partition), for `ttl` of event time and at most `max_keys` per partition: the
oldest go first, so memory stays bounded whatever the traffic. The ids are part of the
partition's state, so they survive a restart through Bytewax recovery.

A record put back from the DLQ (`cqrs dlq replay`) is a deliberate second submission: its id is
taken together with the DLQ offset it came from, so the first replay of a record passes and a
second replay of the same record is a duplicate.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from commands.dead_letters import REPLAYED_HEADER
from commands.envelope import Envelope
from operators.base import Output, PartitionLocal, Skipped
from operators.durations import millis
from operators.registry import register_filter


class DedupeParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    ttl: str | int = "1h"
    max_keys: Annotated[int, msgspec.Meta(ge=1)] = 200_000


class SeenIds:
    """Ids in insertion order with their event time, and the newest event time seen."""

    __slots__ = ("ids", "newest")

    def __init__(self, ids: dict[str, int] | None = None, newest: int = 0) -> None:
        self.ids: dict[str, int] = ids if ids is not None else {}
        self.newest = newest


@register_filter("dedupe", params=DedupeParams)
class Dedupe(PartitionLocal[SeenIds]):
    """Drops commands whose id was already seen (bounded by ttl and max_keys)."""

    def __init__(self, step_id: str, params: DedupeParams) -> None:
        self.step_id = step_id
        self.ttl_ms = millis(params.ttl, "ttl")
        self.max_keys = params.max_keys
        self._skipped = Skipped(step_id, "deduplicated")

    def restore(self, snapshot: Any | None) -> SeenIds:
        if snapshot is None:
            return SeenIds()
        ids, newest = snapshot
        return SeenIds(dict(ids), newest)

    def process(self, state: SeenIds, batch: list[Envelope]) -> list[Output]:
        ids = state.ids
        out: list[Output] = []
        for envelope in batch:
            command = envelope.command
            key = command.id
            replayed = envelope.record.header(REPLAYED_HEADER) if envelope.record.headers else None
            if replayed is not None:
                key = f"{key}@dlq{replayed.decode(errors='replace')}"
            if key in ids:
                out.append(self._skipped)
                continue
            ids[key] = command.ts
            if command.ts > state.newest:
                state.newest = command.ts
            out.append(envelope)
        self._evict(state)
        return out

    def _evict(self, state: SeenIds) -> None:
        ids = state.ids
        horizon = state.newest - self.ttl_ms
        excess = len(ids) - self.max_keys
        # Insertion order is close to event-time order, so expired ids sit at the front.
        while ids:
            oldest = next(iter(ids))
            if excess > 0 or ids[oldest] < horizon:
                del ids[oldest]
                excess -= 1
            else:
                break

    def snapshot(self, state: SeenIds) -> tuple[dict[str, int], int]:
        return dict(state.ids), state.newest
