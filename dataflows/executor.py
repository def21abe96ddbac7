"""`PartitionPipeline`: every step of a pipeline, run for one log partition, a batch at a time.

All state in this project is partition-local (an aggregate's commands share a partition, in log
order), so one object per partition can run the shared filters and then each projection's steps
over a whole batch, step by step, in plain Python. Bytewax then moves one item per batch, not
one per command, and keys the recovery state by partition: `{step_id: snapshot}`.

No record stops the pipeline: what a step raises on one command sends that command to the DLQ
(`filter_error`) and the rest of the batch goes on. A stateless step is run over the whole batch
(`apply_batch`: a filter may work on the batch's columns there) and, only if it raised, again one
command at a time through `apply` (it is pure, so running it twice changes nothing). A
partition-local step either guards its own records (`guards_records`), or runs from a snapshot
taken before the batch, so a command it raised on leaves no trace in its state.

Nothing here imports Bytewax: the executor is tested on its own, and `dataflows.builder` wires
it into a dataflow.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from core.envelope import Envelope, Polled, Rejected
from core.outputs import BatchOutput, Output, Skipped
from dataflows.spec import Pipeline
from operators.base import Filter, PartitionLocal, Stateless
from operators.decode import STEP_ID as DECODE_STEP
from operators.decode import Decoder
from operators.route import ROUTE_ATTR, RouteFilter
from sinks.output import SinkOutput

#: outputs that leave the chain at the step that made them
_ASIDE = frozenset((Rejected, Skipped))


def _nothing(*args: Any) -> None:
    return None


@dataclass(frozen=True)
class Observers:
    """Callbacks the executor reports to (metrics), kept out of the filters."""

    #: (step, in, out, rejected, skipped) per batch
    on_step: Callable[[str, int, int, int, int], None] = _nothing
    #: (step, reason, count)
    on_rejected: Callable[[str, str, int], None] = _nothing
    #: (step, why, count): filtered or deduplicated
    on_skipped: Callable[[str, str, int], None] = _nothing
    #: envelopes leaving the shared filters, per batch
    on_accepted: Callable[[int], None] = _nothing
    #: (step, partition, watermark in epoch ms) of windowed steps, per batch
    on_watermark: Callable[[str, int, int], None] = _nothing


NO_OBSERVERS = Observers()


def _apply(f: Stateless, items: list[Envelope]) -> list[Output]:
    """A stateless step over a batch; if it raised, again a command at a time."""
    try:
        return f.apply_batch(items)
    except Exception:
        pass
    apply = f.apply
    outputs: list[Output] = []
    for envelope in items:
        try:
            outputs.append(apply(envelope))
        except Exception as exc:
            outputs.append(f.failed(envelope, exc))
    return outputs


class _RouteGate(Stateless):
    """Lets through what a `route` step sent to this projection."""

    def __init__(self, projection: str) -> None:
        self.step_id = f"{projection}/routed"
        self._projection = projection
        self._skipped = Skipped(self.step_id, "filtered")

    def apply(self, envelope: Envelope) -> Output:
        targets = envelope.attrs.get(ROUTE_ATTR)
        return envelope if targets is None or self._projection in targets else self._skipped


class PartitionPipeline:
    def __init__(
        self,
        pipeline: Pipeline,
        resume: dict[str, Any] | None = None,
        observers: Observers = NO_OBSERVERS,
    ) -> None:
        self._decode = Decoder(pipeline.spec.source.max_record_bytes)
        self._observers = observers
        self._shared: Sequence[Filter] = pipeline.filters
        routed = any(isinstance(f, RouteFilter) for f in pipeline.filters)
        self._projections: list[tuple[str, SinkOutput, Sequence[Filter]]] = [
            (
                p.name,
                p.output,
                [_RouteGate(p.name), *p.steps] if routed else list(p.steps),
            )
            for p in pipeline.projections
        ]
        resume = resume or {}
        every = [*self._shared, *(s for _, _, steps in self._projections for s in steps)]
        self._local = {f.step_id: f for f in every if isinstance(f, PartitionLocal)}
        self._states = {sid: f.restore(resume.get(sid)) for sid, f in self._local.items()}

    def run(self, polled: Polled) -> BatchOutput:
        """Run what one poll of a partition gave (records in log order) through every step."""
        records = polled.records
        firsts = [r.offset for r in records[:1]] + [r.record.offset for r in polled.rejects[:1]]
        first = min(firsts, default=polled.next_offset - 1)
        newest = records[-1].timestamp if records else 0
        out = BatchOutput(polled.partition, first, polled.next_offset - 1, newest)
        rejects = out.rejects
        for r in polled.rejects:  # unreadable, or skipped by an operator: from the source
            rejects.append(r)
            self._observers.on_rejected(r.step, r.reason.value, 1)
        decoded_from = len(rejects)
        envelopes, unreadable = self._decode.batch(records)
        rejects.extend(unreadable)
        self._report(DECODE_STEP, len(records), len(envelopes), len(rejects) - decoded_from, 0)
        for r in rejects[decoded_from:]:
            self._observers.on_rejected(r.step, r.reason.value, 1)
        accepted = self._steps(self._shared, envelopes, rejects)
        self._observers.on_accepted(len(accepted))
        for name, output, steps in self._projections:
            out.items[name] = output.pick(self._steps(steps, accepted, rejects))
        for step_id, state in self._states.items():
            watermark = getattr(state, "watermark", None)
            if isinstance(watermark, int):
                self._observers.on_watermark(step_id, polled.partition, watermark)
        return out

    def snapshot(self) -> dict[str, Any]:
        """Every partition-local step's snapshot, by step id."""
        return {sid: self._local[sid].snapshot(state) for sid, state in self._states.items()}

    def _steps(
        self, steps: Sequence[Filter], items: list[Any], rejects: list[Rejected]
    ) -> list[Any]:
        """Each step over the whole batch in turn: what passes goes on, rejects are collected,
        skipped items are counted and dropped."""
        for f in steps:
            if not items:
                break
            local = isinstance(f, PartitionLocal)
            outputs = self._fold(f, items) if local else _apply(f, items)  # type: ignore
            rejected = skipped = 0
            types = set(map(type, outputs))  # in C: most batches of most steps set none aside
            if types.isdisjoint(_ASIDE):
                passed = outputs
            else:
                passed = [o for o in outputs if type(o) not in _ASIDE]
                rejected, skipped = self._set_aside(f.step_id, outputs, types, rejects)
            self._report(f.step_id, len(items), len(passed), rejected, skipped)
            items = passed
        return items

    def _fold(self, f: PartitionLocal[Any], items: list[Any]) -> list[Output]:
        sid = f.step_id
        if f.guards_records:
            return f.process(self._states[sid], items)
        saved = f.snapshot(self._states[sid])
        try:
            return f.process(self._states[sid], items)
        except Exception:
            pass
        # Replay the batch from the snapshot a command at a time, each from its own snapshot.
        outputs: list[Output] = []
        state = self._states[sid] = f.restore(saved)
        for envelope in items:
            before = f.snapshot(state)
            try:
                outputs.extend(f.process(state, [envelope]))
            except Exception as exc:
                state = self._states[sid] = f.restore(before)
                outputs.append(f.failed(envelope, exc))
        return outputs

    def _set_aside(
        self, step: str, outputs: list[Output], types: set[type], rejects: list[Rejected]
    ) -> tuple[int, int]:
        """Collect a step's rejects and count its skips (the rare case, so more passes); `types`
        are the types among `outputs`."""
        observers = self._observers
        rejected: list[Rejected] = []
        if Rejected in types:
            rejected = [o for o in outputs if type(o) is Rejected]
            rejects.extend(rejected)
            for o in rejected:
                observers.on_rejected(o.step, o.reason.value, 1)
        skipped: Counter[str] = Counter()
        if Skipped in types:
            skipped.update([o.why for o in outputs if type(o) is Skipped])
        for why, n in skipped.items():
            observers.on_skipped(step, why, n)
        return len(rejected), skipped.total()

    def _report(self, step: str, ins: int, outs: int, rejected: int, skipped: int) -> None:
        self._observers.on_step(step, ins, outs, rejected, skipped)
