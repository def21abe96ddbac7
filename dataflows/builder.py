"""Turns a resolved pipeline into a Bytewax dataflow: the thin layer around the filters.

Wiring, per shape of filter:
- consecutive stateless filters (with `decode` at the head) are fused into one `flat_map_batch`
  step, so a batch crosses from Bytewax into Python once, not once per filter per command;
- a partition-local filter (keyed state, dedupe, windows) runs in `stateful_batch`, keyed by
  log partition: one logic per partition folds a whole batch in one call;
- every step's rejects are merged into the DLQ sink; `Skipped` items are counted and dropped
  where they appear; projector outputs go to their projection's sink, keyed by log partition.
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
from dataflows.spec import Pipeline, Projection
from operators.base import Filter, Forwarded, Output, PartitionLocal, Projected, Skipped, Stateless
from operators.decode import STEP_ID as DECODE_STEP
from operators.decode import Decoder
from operators.route import ROUTE_ATTR, RouteFilter

SinkFactory = Callable[[Projection], Sink[Any]]


def _nothing(*args: Any) -> None:
    return None


@dataclass(frozen=True)
class Observers:
    """Callbacks the dataflow reports to (metrics), kept out of the filters."""

    #: (step, in, out, rejected, skipped) per batch
    on_step: Callable[[str, int, int, int, int], None] = _nothing
    #: (step, reason, count) per reject
    on_rejected: Callable[[str, str, int], None] = _nothing
    #: (step, why, count): filtered or deduplicated
    on_skipped: Callable[[str, str, int], None] = _nothing
    #: envelopes leaving the shared filters, per batch
    on_accepted: Callable[[int], None] = _nothing


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
    wiring = _Wiring(observers, rejects)

    head = Decoder(pipeline.spec.source.max_record_bytes)
    shared = wiring.chain(_segments(pipeline.filters, head), records, accepted=True)
    routed = any(isinstance(f, RouteFilter) for f in pipeline.filters)
    for projection in pipeline.projections:
        steps: Sequence[Filter] = projection.steps
        if routed:
            steps = [_RouteGate(projection.name), *steps]
        outputs = wiring.chain(_segments(steps), shared)
        items = op.flat_map_batch(f"{projection.name}__items", outputs, _sink_items)
        op.output(f"{projection.name}__sink", items, projection_sink(projection))

    merged = op.merge("rejects", *rejects) if len(rejects) > 1 else rejects[0]
    op.output("dlq", merged, dlq_sink)
    return flow


class _RouteGate(Stateless):
    """Lets through what a `route` step sent to this projection."""

    def __init__(self, projection: str) -> None:
        self.step_id = f"{projection}__routed"
        self._projection = projection
        self._skipped = Skipped(self.step_id, "filtered")

    def apply(self, envelope: Envelope) -> Output:
        targets = envelope.attrs.get(ROUTE_ATTR)
        return envelope if targets is None or self._projection in targets else self._skipped


# A segment is a run of stateless filters (optionally headed by the decoder), or one
# partition-local filter.
Head = Callable[[LogRecord], Envelope | Rejected]
Segment = tuple[Head | None, tuple[Stateless, ...]] | PartitionLocal[Any]


def _segments(filters: Sequence[Filter], head: Head | None = None) -> list[Segment]:
    segments: list[Segment] = []
    run: list[Stateless] = []
    for f in filters:
        if isinstance(f, Stateless):
            run.append(f)
            continue
        if not isinstance(f, PartitionLocal):
            raise TypeError(f"step {f.step_id!r} is neither stateless nor partition-local")
        if run or head is not None:
            segments.append((head, tuple(run)))
            head, run = None, []
        segments.append(f)
    if run or head is not None:
        segments.append((head, tuple(run)))
    return segments


class _Wiring:
    def __init__(self, observers: Observers, rejects: list[Stream[Rejected]]) -> None:
        self.observers = observers
        self.rejects = rejects

    def chain(
        self, segments: list[Segment], stream: Stream[Any], accepted: bool = False
    ) -> Stream[Any]:
        """Wire segments one after another; return what the last one passes on. With
        `accepted`, what leaves the last segment is reported as accepted."""
        for i, segment in enumerate(segments):
            report_accepted = accepted and i == len(segments) - 1
            if isinstance(segment, PartitionLocal):
                sid = segment.step_id
                out = self._partition_local(segment, stream, report_accepted)
            else:
                head, filters = segment
                sid = "__".join([*([DECODE_STEP] if head else []), *(f.step_id for f in filters)])
                runner = _StatelessRunner(head, filters, self.observers, report_accepted)
                out = op.flat_map_batch(sid, stream, runner)
            branched = op.branch(f"{sid}__rejects", out, _is_rejected)
            self.rejects.append(branched.trues)
            stream = branched.falses
        return stream

    def _partition_local(
        self, f: PartitionLocal[Any], stream: Stream[Envelope], report_accepted: bool
    ) -> Stream[Output]:
        by_partition = op.key_on(f"{f.step_id}__by_partition", stream, _partition_key)
        observers = self.observers

        def build(resume: Any | None) -> _PartitionLogic:
            return _PartitionLogic(f, resume, observers, report_accepted)

        out = op.stateful_batch(f.step_id, by_partition, build)
        return op.key_rm(f"{f.step_id}__unkey", out)


def _is_rejected(item: Output) -> bool:
    return isinstance(item, Rejected)


def _partition_key(envelope: Envelope) -> str:
    return part_key(envelope.record.partition)


def _sink_items(batch: list[Projected | Forwarded]) -> list[Any]:
    items: list[Any] = []
    for p in batch:
        if isinstance(p, Projected):
            items.append((part_key(p.partition), (p.offset, p.row)))
        else:
            items.append(p)
    return items


def _report(
    step: str,
    ins: int,
    stopped: Iterable[Output],
    observers: Observers,
    keep: list[Output],
    outs: int | None = None,
) -> None:
    """Report one step's batch and keep what it produced, except the skipped items. `stopped`
    is what did not pass on as an envelope; `outs` defaults to what did (ins - stopped)."""
    rejected = skipped = 0
    skipped_by: dict[str, int] = {}
    for item in stopped:
        if isinstance(item, Skipped):
            skipped_by[item.why] = skipped_by.get(item.why, 0) + 1
            skipped += 1
            continue
        keep.append(item)
        if isinstance(item, Rejected):
            rejected += 1
            observers.on_rejected(item.step, item.reason.value, 1)
    for why, n in skipped_by.items():
        observers.on_skipped(step, why, n)
    if outs is None:
        outs = ins - rejected - skipped
    observers.on_step(step, ins, outs, rejected, skipped)


class _StatelessRunner:
    """Runs a fused run of stateless filters over a batch, counting per step."""

    def __init__(
        self,
        head: Head | None,
        filters: tuple[Stateless, ...],
        observers: Observers,
        report_accepted: bool,
    ) -> None:
        self._head = head
        self._steps = [f.step_id for f in filters]
        self._applies = [f.apply for f in filters]
        self._observers = observers
        self._report_accepted = report_accepted

    def __call__(self, batch: list[Any]) -> list[Output]:
        head, applies = self._head, self._applies
        n = len(applies)
        ins = [0] * n
        stopped: list[list[Output]] = [[] for _ in range(n)]  # what did not pass each step
        head_rejects: list[Output] = []
        passed: list[Output] = []
        for item in batch:
            if head is not None:
                item = head(item)
                if not isinstance(item, Envelope):
                    head_rejects.append(item)
                    continue
            for i in range(n):
                ins[i] += 1
                item = applies[i](item)
                if not isinstance(item, Envelope):
                    stopped[i].append(item)
                    break
            else:
                passed.append(item)
        kept: list[Output] = []
        observers = self._observers
        if head is not None:
            _report(DECODE_STEP, len(batch), head_rejects, observers, kept)
        for i in range(n):
            _report(self._steps[i], ins[i], stopped[i], observers, kept)
        kept.extend(passed)
        if self._report_accepted:
            observers.on_accepted(len(passed))
        return kept


class _PartitionLogic(StatefulBatchLogic[Envelope, Output, Any]):
    """One partition's state for one partition-local filter."""

    def __init__(
        self,
        f: PartitionLocal[Any],
        resume: Any | None,
        observers: Observers,
        report_accepted: bool,
    ) -> None:
        self._f = f
        self._state = f.restore(resume)
        self._observers = observers
        self._report_accepted = report_accepted

    def on_batch(self, values: list[Envelope]) -> tuple[Iterable[Output], bool]:
        kept: list[Output] = []
        outputs = self._f.process(self._state, values)
        passed = sum(1 for item in outputs if not isinstance(item, Rejected | Skipped))
        _report(self._f.step_id, len(values), outputs, self._observers, kept, outs=passed)
        if self._report_accepted:
            self._observers.on_accepted(sum(1 for item in kept if isinstance(item, Envelope)))
        return kept, StatefulBatchLogic.RETAIN

    def snapshot(self) -> Any:
        return self._f.snapshot(self._state)
