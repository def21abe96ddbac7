"""`dedupe`: drops a command whose id was seen before (a producer retry, a double send).

Ids are remembered per log partition (a retried command carries its aggregate's key, so it
lands on the same partition) for `ttl` of event time, and at most the last `max_keys` of them:
the oldest go first, so memory stays bounded whatever the traffic.

The memory is a ring of 64-bit id hashes with their event times, in flat arrays, and an
open-addressing index over it: a flat array of ring positions (linear probing, at most half
full, deletion by shifting back rather than tombstones). That is about 34 bytes an id, where a
dict of ints took ~100 (the dict's entry, the two int objects), and nothing in it is an object
CPython's collector could walk. The arrays are the snapshot: copying them is a memory copy, so
the state can go into Bytewax recovery at every epoch without costing a pass over every id (the
index is rebuilt from them on restore). A 64-bit hash makes a false duplicate about as likely
as one in 10^9 at the default cap.

Beside each id hash the ring keeps a 64-bit hash of the record's bytes: a repeat with the same
bytes is a duplicate (skipped), but a *different* command reusing a seen id is a conflict and
goes to the DLQ (`id_conflict`) rather than vanish. (A snapshot from before content hashes has
none: its ids count as duplicates whatever comes.)

A record put back from the DLQ (`cqrs dlq replay`) is a deliberate second submission: its id is
taken together with the DLQ offset it came from, so the first replay of a record passes and a
second replay of the same record is a duplicate. Only `replayed_from` counts, which the source
sets after checking that the record's key and bytes are those of the dead letter at that
offset; the `replayed-from-dlq` header alone gets no one past dedupe.
"""

from __future__ import annotations

import hashlib
from array import array
from typing import Annotated, Any

import msgspec

from core.envelope import Envelope, Reason
from core.outputs import Output, Skipped
from operators.aggregates import stable_hash
from operators.base import PartitionLocal
from operators.durations import millis
from operators.registry import register_filter


class DedupeParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    ttl: str | int = "10m"
    max_keys: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 100_000


#: the content hash of ids restored from a snapshot that kept none
UNKNOWN_CONTENT = 0


class SeenIds:
    """A ring of (id hash, content hash, event time), oldest at `head`, and an index from id
    hash to ring position: `slots[i]` is a position + 1, 0 a free slot."""

    __slots__ = ("contents", "hashes", "head", "mask", "newest", "size", "slots", "times")

    def __init__(self, capacity: int) -> None:
        self.hashes = array("Q", bytes(8 * capacity))
        self.contents = array("Q", bytes(8 * capacity))
        self.times = array("q", bytes(8 * capacity))
        self.head = 0
        self.size = 0
        self.newest = 0
        width = 1 << max(3, (2 * capacity - 1).bit_length())  # >= 2 x capacity: half full
        self.slots = array("I", bytes(4 * width))
        self.mask = width - 1

    def __len__(self) -> int:
        return self.size

    def put(self, h: int, content: int, ts: int) -> int | None:
        """The content hash kept with the id hash `h`; or, if `h` is new, None, and `h` is kept
        as the newest id (the oldest dropped if the ring is full)."""
        slots, hashes, mask = self.slots, self.hashes, self.mask
        i = h & mask
        while at := slots[i]:
            if hashes[at - 1] == h:
                return self.contents[at - 1]
            i = (i + 1) & mask
        capacity = len(hashes)
        if self.size == capacity:
            self.drop_oldest()
            i = h & mask  # the drop may have opened a slot earlier in the run
            while slots[i]:
                i = (i + 1) & mask
        at = (self.head + self.size) % capacity
        hashes[at] = h
        self.contents[at] = content
        self.times[at] = ts
        slots[i] = at + 1
        self.size += 1
        if ts > self.newest:
            self.newest = ts
        return None

    def drop_oldest(self) -> None:
        slots, hashes, mask = self.slots, self.hashes, self.mask
        at = self.head + 1
        i = hashes[self.head] & mask
        while slots[i] != at:
            i = (i + 1) & mask
        # Shift back every later member of the probe run that may not sit past the hole.
        j = i
        while at := slots[j := (j + 1) & mask]:
            home = hashes[at - 1] & mask
            if (home <= i < j) or (i < j < home) or (j < home <= i):
                slots[i] = at
                i = j
        slots[i] = 0
        self.head = (self.head + 1) % len(hashes)
        self.size -= 1

    def expire(self, horizon: int) -> None:
        """Forget ids older than `horizon`; insertion order is close to event-time order."""
        while self.size and self.times[self.head] < horizon:
            self.drop_oldest()


@register_filter("dedupe", params=DedupeParams)
class Dedupe(PartitionLocal[SeenIds]):
    """Drops repeats of a command already seen, and sends a different command reusing its id to
    the DLQ (bounded by ttl and max_keys)."""

    guards_records = True

    def __init__(self, step_id: str, params: DedupeParams) -> None:
        self.step_id = step_id
        self.ttl_ms = millis(params.ttl, "ttl")
        self.max_keys = params.max_keys
        self._skipped = Skipped(step_id, "deduplicated")

    def restore(self, snapshot: Any | None) -> SeenIds:
        state = SeenIds(self.max_keys)
        if snapshot is None:
            return state
        if len(snapshot) == 3:  # kept before content hashes
            hashes, times, newest = snapshot
            contents = bytes(len(hashes))
        else:
            hashes, contents, times, newest = snapshot
        state.newest = newest
        for h, c, ts in zip(
            array("Q", hashes), array("Q", contents), array("q", times), strict=True
        ):
            state.put(h, c, ts)
        state.newest = max(state.newest, newest)
        return state

    def process(self, state: SeenIds, batch: list[Envelope]) -> list[Output]:
        out: list[Output] = []
        for envelope in batch:
            command = envelope.command
            record = envelope.record
            key = command.id
            if record.replayed_from is not None:
                key = f"{key}@dlq{record.replayed_from}"
            try:
                h = stable_hash(key)
                content = _content_hash(record.value)
            except Exception as exc:
                out.append(self.failed(envelope, exc))
                continue
            known = state.put(h, content, command.ts)
            if known is None:
                out.append(envelope)
            elif known in (content, UNKNOWN_CONTENT):
                out.append(self._skipped)
            else:
                detail = f"id {command.id!r} was already taken by a different command"
                out.append(self.reject(envelope, Reason.ID_CONFLICT, detail))
        state.expire(state.newest - self.ttl_ms)
        return out

    def snapshot(self, state: SeenIds) -> tuple[bytes, bytes, bytes, int]:
        """The live ids, oldest first, as packed arrays."""
        capacity = len(state.hashes)
        end = state.head + state.size

        def live(ring: array[int]) -> bytes:
            if end <= capacity:
                return ring[state.head : end].tobytes()
            return (ring[state.head :] + ring[: end - capacity]).tobytes()

        return live(state.hashes), live(state.contents), live(state.times), state.newest


def _content_hash(value: bytes | None) -> int:
    """64 bits of the record's bytes; never `UNKNOWN_CONTENT`."""
    digest = hashlib.blake2b(value or b"", digest_size=8).digest()
    return int.from_bytes(digest, "big") or 1
