"""`dedupe`: drops a command whose id was seen before (a producer retry, a double send).

Ids are remembered per log partition (a retried command carries its aggregate's key, so it
lands on the same partition) for `ttl` of event time, and at most the last `max_keys` of them:
the oldest go first, so memory stays bounded whatever the traffic.

The memory is a ring of 64-bit id hashes with their event times, in two flat arrays, plus a
dict for lookups. The arrays are the snapshot: copying them is a memory copy, so the state can go
into Bytewax recovery at every epoch without costing a pass over every id (the dict is rebuilt
from them on restore). The lookup is a dict of ints, not a set, because CPython's collector stops
tracking such a dict but walks every member of a set at each full collection (80 ms a time at
6 x 100k ids). A 64-bit hash makes a false duplicate about as likely as one in 10^9 at the
default cap.

A record put back from the DLQ (`cqrs dlq replay`) is a deliberate second submission: its id is
taken together with the DLQ offset it came from, so the first replay of a record passes and a
second replay of the same record is a duplicate.
"""

from __future__ import annotations

from array import array
from typing import Annotated, Any

import msgspec

from commands.dead_letters import REPLAYED_HEADER
from commands.envelope import Envelope
from operators.aggregates import stable_hash
from operators.base import Output, PartitionLocal, Skipped
from operators.durations import millis
from operators.registry import register_filter


class DedupeParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    ttl: str | int = "10m"
    max_keys: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 100_000


class SeenIds:
    """A ring of (hash, event time), oldest at `head`, and the hashes in it as dict keys."""

    __slots__ = ("hashes", "head", "newest", "seen", "size", "times")

    def __init__(self, capacity: int) -> None:
        self.hashes = array("Q", bytes(8 * capacity))
        self.times = array("q", bytes(8 * capacity))
        self.head = 0
        self.size = 0
        self.newest = 0
        self.seen: dict[int, None] = {}

    def __contains__(self, h: int) -> bool:
        return h in self.seen

    def add(self, h: int, ts: int) -> None:
        capacity = len(self.hashes)
        if self.size == capacity:
            self.drop_oldest()
        i = (self.head + self.size) % capacity
        self.hashes[i] = h
        self.times[i] = ts
        self.size += 1
        self.seen[h] = None
        if ts > self.newest:
            self.newest = ts

    def drop_oldest(self) -> None:
        self.seen.pop(self.hashes[self.head], None)
        self.head = (self.head + 1) % len(self.hashes)
        self.size -= 1

    def expire(self, horizon: int) -> None:
        """Forget ids older than `horizon`; insertion order is close to event-time order."""
        while self.size and self.times[self.head] < horizon:
            self.drop_oldest()


@register_filter("dedupe", params=DedupeParams)
class Dedupe(PartitionLocal[SeenIds]):
    """Drops commands whose id was already seen (bounded by ttl and max_keys)."""

    def __init__(self, step_id: str, params: DedupeParams) -> None:
        self.step_id = step_id
        self.ttl_ms = millis(params.ttl, "ttl")
        self.max_keys = params.max_keys
        self._skipped = Skipped(step_id, "deduplicated")

    def restore(self, snapshot: Any | None) -> SeenIds:
        state = SeenIds(self.max_keys)
        if snapshot is None:
            return state
        hashes, times, newest = snapshot
        state.newest = newest
        for h, ts in zip(array("Q", hashes), array("q", times), strict=True):
            state.add(h, ts)
        state.newest = max(state.newest, newest)
        return state

    def process(self, state: SeenIds, batch: list[Envelope]) -> list[Output]:
        out: list[Output] = []
        for envelope in batch:
            command = envelope.command
            key = command.id
            if envelope.record.headers:
                replayed = envelope.record.header(REPLAYED_HEADER)
                if replayed is not None:
                    key = f"{key}@dlq{replayed.decode(errors='replace')}"
            h = stable_hash(key)
            if h in state:
                out.append(self._skipped)
                continue
            state.add(h, command.ts)
            out.append(envelope)
        state.expire(state.newest - self.ttl_ms)
        return out

    def snapshot(self, state: SeenIds) -> tuple[bytes, bytes, int]:
        """The live ids, oldest first, as packed arrays."""
        capacity = len(state.hashes)
        end = state.head + state.size
        if end <= capacity:
            hashes = state.hashes[state.head : end]
            times = state.times[state.head : end]
        else:
            hashes = state.hashes[state.head :] + state.hashes[: end - capacity]
            times = state.times[state.head :] + state.times[: end - capacity]
        return hashes.tobytes(), times.tobytes(), state.newest
