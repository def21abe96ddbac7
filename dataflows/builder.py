"""Turns a resolved pipeline into a Bytewax dataflow: the thin layer around the filters.

Wiring, per shape of filter:
- consecutive stateless filters (with `decode` at the head) are fused into one `flat_map_batch`
  step, so a batch crosses from Bytewax into Python once, not once per filter per command;
- a keyed filter runs in `stateful_batch`, keyed by log partition: one logic per partition holds
  the per-key states in a dict and folds a whole batch in one call. Every command of an
  aggregate is on one partition, so per-aggregate semantics are kept;
- rejects from every step are merged into the DLQ sink; projector rows go to their table's sink,
  keyed by log partition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from commands.envelope import Envelope, LogRecord, Rejected
from commands.log import part_key
from dataflows.spec import Pipeline
from operators.base import Filter, Keyed, Output, Projected, Stateless
from operators.decode import STEP_ID as DECODE_STEP
from operators.decode import decode

SinkFactory = Callable[[str], Sink[Any]]  # projection name -> its sink


@dataclass(frozen=True)
class Observers:
    """Callbacks the dataflow reports to (metrics), kept out of the filters."""

    on_rejected: Callable[[str, str, int], None] = lambda step, reason, n: None


def build_dataflow(
    pipeline: Pipeline,
    source: Source[LogRecord],
    projection_sink: SinkFactory,
    dlq_sink: Sink[Rejected],
    observers: Observers = Observers(),
) -> Dataflow:
    flow = Dataflow(pipeline.deployment)
    records = op.input("source", flow, source)
    rejects: list[Stream[Rejected]] = []

    shared = _chain(_segments(pipeline.filters, head=decode), records, rejects)
    for projection in pipeline.projections:
        # A stream may feed several steps: each projection sees every envelope.
        rows = _chain(_segments(projection.steps), shared, rejects, rows_of=projection.name)
        op.output(f"{projection.name}__sink", rows, projection_sink(projection.name))

    if rejects:
        merged = op.merge("rejects", *rejects) if len(rejects) > 1 else rejects[0]
        counted = op.map("rejects__count", merged, _counting(observers))
        op.output("dlq", counted, dlq_sink)
    return flow


def _counting(observers: Observers) -> Callable[[Rejected], Rejected]:
    def count(rejected: Rejected) -> Rejected:
        observers.on_rejected(rejected.step, rejected.reason.value, 1)
        return rejected

    return count


# A segment is either a run of stateless filters (optionally headed by the decoder) or one keyed
# filter.
Segment = tuple[Callable[[Any], Any] | None, tuple[Stateless, ...]] | Keyed[Any]


def _segments(filters: Sequence[Filter], head: Callable[[Any], Any] | None = None) -> list[Segment]:
    segments: list[Segment] = []
    run: list[Stateless] = []
    for f in filters:
        if isinstance(f, Stateless):
            run.append(f)
            continue
        if not isinstance(f, Keyed):
            raise TypeError(f"step {f.step_id!r} is neither stateless nor keyed")
        if run or head is not None:
            segments.append((head, tuple(run)))
            head, run = None, []
        segments.append(f)
    if run or head is not None:
        segments.append((head, tuple(run)))
    return segments


def _chain(
    segments: list[Segment],
    stream: Stream[Any],
    rejects: list[Stream[Rejected]],
    rows_of: str | None = None,
) -> Stream[Any]:
    """Wire segments one after another; return the stream of what the last one passes on:
    envelopes, or sink items when `rows_of` names a projection."""
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if isinstance(segment, Keyed):
            out = _keyed(segment, stream)
            sid = segment.step_id
        else:
            head, filters = segment
            sid = "__".join([*([DECODE_STEP] if head else []), *(f.step_id for f in filters)])
            out = op.flat_map_batch(sid, stream, _stateless_batch(head, filters))
        stream = _split(sid, out, rejects, rows=last and rows_of is not None)
    return stream


def _split(
    sid: str, out: Stream[Output], rejects: list[Stream[Rejected]], rows: bool
) -> Stream[Any]:
    branched = op.branch(f"{sid}__rejects", out, _is_rejected)
    rejects.append(branched.trues)
    if not rows:
        return branched.falses
    return op.flat_map_batch(f"{sid}__rows", branched.falses, _sink_items)


def _is_rejected(item: Output) -> bool:
    return isinstance(item, Rejected)


def _sink_items(batch: list[Projected]) -> list[tuple[str, tuple[int, tuple[Any, ...]]]]:
    return [(part_key(p.partition), (p.offset, p.row)) for p in batch]


def _stateless_batch(
    head: Callable[[Any], Any] | None, filters: tuple[Stateless, ...]
) -> Callable[[list[Any]], list[Output]]:
    applies = [f.apply for f in filters]

    def run(batch: list[Any]) -> list[Output]:
        out: list[Output] = []
        for item in batch:
            if head is not None:
                item = head(item)
            for apply in applies:
                if not isinstance(item, Envelope):
                    break
                item = apply(item)
            if item is not None:
                out.append(item)
        return out

    return run


def _keyed(f: Keyed[Any], stream: Stream[Envelope]) -> Stream[Output]:
    by_partition = op.key_on(f"{f.step_id}__by_partition", stream, _partition_key)
    out = op.stateful_batch(f.step_id, by_partition, lambda resume: _PartitionStates(f, resume))
    return op.key_rm(f"{f.step_id}__unkey", out)


def _partition_key(envelope: Envelope) -> str:
    return part_key(envelope.record.partition)


class _PartitionStates(StatefulBatchLogic[Envelope, Output, dict[str, Any]]):
    """The states of every key of one log partition, for one keyed filter."""

    def __init__(self, f: Keyed[Any], resume: dict[str, Any] | None) -> None:
        self._f = f
        self._states: dict[str, Any] = dict(resume) if resume else {}

    def on_batch(self, values: list[Envelope]) -> tuple[Iterable[Output], bool]:
        states = self._states
        key_of = self._f.key
        step = self._f.step
        out: list[Output] = []
        for envelope in values:
            key = key_of(envelope)
            state, emitted = step(states.get(key), envelope)
            if state is None:
                states.pop(key, None)
            else:
                states[key] = state
            out.extend(emitted)
        return out, StatefulBatchLogic.RETAIN

    def snapshot(self) -> dict[str, Any]:
        # States are immutable values, so a shallow copy is a snapshot that later batches
        # cannot change.
        return dict(self._states)
