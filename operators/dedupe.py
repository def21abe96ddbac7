"""`dedupe`: drops a command whose id was seen before (a producer retry, a double send).

Ids are remembered per log partition (a retried command carries its aggregate's key, so it
lands on the same partition) for `ttl` of event time, and at most the last `max_keys` of them:
the oldest go first, so memory stays bounded whatever the traffic.

The memory is a ring of 64-bit id hashes with their event times, in flat arrays, and an
open-addressing index over it: a flat array of ring positions (linear probing, at most half
full, deletion by shifting back rather than tombstones). That is about 34 bytes an id, where a
dict of ints took ~100, and nothing in it is an object CPython's collector could walk. It is
compiled (`operators/native`, `SeenIds`): hashing the ids and bytes and probing the index in
Python cost ~3 µs a command, the most of any step. The arrays are the snapshot: copying them is
a memory copy, so the state can go into Bytewax recovery at every epoch without costing a pass
over every id (the index is rebuilt from them on restore). A 64-bit hash makes a false
duplicate about as likely as one in 10^9 at the default cap.

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
from operator import attrgetter
from typing import Annotated, Any

import msgspec

from core.envelope import MAX_TS, Envelope, Reason
from core.outputs import Output, Skipped
from operators._native import CONFLICT, DUPLICATE, NEW, SeenIds
from operators.aggregates import stable_hash
from operators.base import PartitionLocal
from operators.durations import millis
from operators.registry import register_filter

_record, _command = attrgetter("record"), attrgetter("command")
_replayed_from, _value = attrgetter("replayed_from"), attrgetter("value")
_id, _ts = attrgetter("id"), attrgetter("ts")
#: a ttl no event time is that far past (they lie in [0, MAX_TS]): the index expires nothing
_NO_EXPIRY = MAX_TS + 1


class DedupeParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    ttl: str | int = "10m"
    max_keys: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 100_000


@register_filter("dedupe", params=DedupeParams)
class Dedupe(PartitionLocal[SeenIds]):
    """Drops repeats of a command already seen, and sends a different command reusing its id to
    the DLQ (bounded by ttl and max_keys)."""

    guards_records = True
    in_parts = True

    def __init__(self, step_id: str, params: DedupeParams) -> None:
        self.step_id = step_id
        # Event times lie in [0, MAX_TS], so a longer ttl never expires anything: capped, it
        # fits the index's 64-bit times instead of overflowing them on every batch.
        self.ttl_ms = min(millis(params.ttl, "ttl"), MAX_TS + 1)
        self.max_keys = params.max_keys
        self._skipped = Skipped(step_id, "deduplicated")

    def restore(self, snapshot: Any | None) -> SeenIds:
        state = SeenIds(self.max_keys)
        if snapshot is None:
            return state
        if len(snapshot) == 3:  # kept before content hashes: every id's is unknown (0)
            hashes, times, newest = snapshot
            contents = bytes(len(hashes))
        else:
            hashes, contents, times, newest = snapshot
        state.newest = newest
        state.load(hashes, contents, times)
        return state

    def process(self, state: SeenIds, batch: list[Envelope]) -> list[Output]:
        out = self.process_part(state, batch)
        self.end_batch(state)
        return out

    def end_batch(self, state: SeenIds) -> None:
        """Forget the ids older than `ttl` before the newest event time: once a batch, after
        all its parts (an expiry between parts would let a repeat past the ttl through where
        the whole batch would not)."""
        state.process([], [], [], self.ttl_ms)

    def process_part(self, state: SeenIds, batch: list[Envelope]) -> list[Output]:
        # the batch's columns through C-level maps: no Python per command but the replayed
        records, commands = list(map(_record, batch)), list(map(_command, batch))
        if set(map(_replayed_from, records)) <= {None}:
            keys = list(map(_id, commands))
        else:
            keys = [
                c.id if r.replayed_from is None else f"{c.id}@dlq{r.replayed_from}"
                for r, c in zip(records, commands, strict=True)
            ]
        codes = state.process(
            keys, list(map(_value, records)), list(map(_ts, commands)), _NO_EXPIRY
        )
        if codes.count(NEW) == len(codes):
            return list(batch)
        out: list[Output] = []
        for envelope, key, code in zip(batch, keys, codes, strict=True):
            if code == NEW:
                out.append(envelope)
            elif code == DUPLICATE:
                out.append(self._skipped)
            elif code == CONFLICT:
                detail = f"id {envelope.command.id!r} was already taken by a different command"
                out.append(self.reject(envelope, Reason.ID_CONFLICT, detail))
            else:
                out.append(self.failed(envelope, _hash_error(key, envelope.record.value)))
        return out

    def snapshot(self, state: SeenIds) -> tuple[bytes, bytes, bytes, int]:
        """The live ids, oldest first, as packed arrays (native-endian u64, u64, i64)."""
        return (*state.snapshot(), state.newest)


def _hash_error(key: str, value: bytes | None) -> Exception:
    """Why hashing a command failed: the error the Python hashing raises on the same input."""
    try:
        stable_hash(key)
        hashlib.blake2b(value or b"", digest_size=8)
    except Exception as exc:
        return exc
    return TypeError(
        f"cannot hash an id of type {type(key).__name__} with a record value of type "
        f"{type(value).__name__}"
    )
