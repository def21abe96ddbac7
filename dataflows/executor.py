"""`PartitionPipeline`: every step of a pipeline, run for one log partition, a batch at a time.

All state in this project is partition-local (an aggregate's commands share a partition, in log
order), so one object per partition can run the shared filters and then each projection's steps
over a batch, step by step, in plain Python. Bytewax then moves one item per batch, not one per
command, and keys the recovery state by partition: `{step_id: snapshot}`. Inside, the steps that
can take a batch in parts take it a part at a time (see `run`): a part of a poll fits the CPU's
cache, a whole poll does not.

No record stops the pipeline: what a step raises on one command sends that command to the DLQ
(`filter_error`) and the rest of the batch goes on. A stateless step is run over its items
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
#: records a batch is taken in by the steps that can take it in parts (see `run`)
PART = 256


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


class _Tally:
    """What one step did over a batch, summed over the parts it took it in: reported once per
    batch, as if it had taken the batch whole."""

    __slots__ = ("ins", "outs", "rejected", "skipped")

    def __init__(self) -> None:
        self.ins = self.outs = 0
        self.rejected: list[Rejected] = []
        self.skipped: Counter[str] = Counter()


def _in_parts(f: Filter) -> bool:
    """Whether a step gives over a batch's parts, one after another, what it gives over the
    whole batch: a stateless one does (one output per command), a partition-local one says."""
    return isinstance(f, Stateless) or (isinstance(f, PartitionLocal) and f.in_parts)


def _split(steps: Sequence[Filter]) -> tuple[list[Filter], list[Filter]]:
    """The steps that can take a batch in parts (up to the first that cannot), and the rest."""
    n = next((i for i, f in enumerate(steps) if not _in_parts(f)), len(steps))
    return list(steps[:n]), list(steps[n:])


class PartitionPipeline:
    def __init__(
        self,
        pipeline: Pipeline,
        resume: dict[str, Any] | None = None,
        observers: Observers = NO_OBSERVERS,
    ) -> None:
        self._decode = Decoder(pipeline.spec.source.max_record_bytes)
        self._observers = observers
        shared = pipeline.filters
        routed = any(isinstance(f, RouteFilter) for f in shared)
        self._shared, self._shared_whole = _split(shared)
        # (name, output, steps taken in parts, steps taken over the whole batch)
        self._projections: list[tuple[str, SinkOutput, list[Filter], list[Filter]]] = []
        for p in pipeline.projections:
            steps = [_RouteGate(p.name), *p.steps] if routed else list(p.steps)
            parts, whole = _split(steps) if not self._shared_whole else ([], steps)
            self._projections.append((p.name, p.output, parts, whole))
        every = [*shared, *(s for *_, parts, whole in self._projections for s in parts + whole)]
        self._every = every
        self._local = {f.step_id: f for f in every if isinstance(f, PartitionLocal)}
        resume = resume or {}
        self._states = {sid: f.restore(resume.get(sid)) for sid, f in self._local.items()}
        in_parts = [*self._shared, *(s for *_, parts, _ in self._projections for s in parts)]
        self._parted = {id(f) for f in in_parts if isinstance(f, PartitionLocal)}

    def run(self, polled: Polled) -> BatchOutput:
        """Run what one poll of a partition gave (records in log order) through every step.

        The steps that can take it in parts take it `PART` records at a time, each part through
        all of them before the next: a part's objects are still in the CPU's cache at the next
        step, where a whole poll's (thousands of commands, megabytes) would be read back from
        memory at every step. The rest take the whole batch. Outputs, rejects (in step order)
        and what the observers hear are what taking the whole batch at every step gives.
        """
        records = polled.records
        firsts = [r.offset for r in records[:1]] + [r.record.offset for r in polled.rejects[:1]]
        first = min(firsts, default=polled.next_offset - 1)
        newest = records[-1].timestamp if records else 0
        out = BatchOutput(polled.partition, first, polled.next_offset - 1, newest)
        observers = self._observers
        for r in polled.rejects:  # unreadable, or skipped by an operator: from the source
            out.rejects.append(r)
            observers.on_rejected(r.step, r.reason.value, 1)
        decoded, accepted, unreadable = 0, 0, []
        tallies = {id(f): _Tally() for f in self._every}
        shared: list[Any] = []
        gathered: dict[str, list[Any]] = {name: [] for name, *_ in self._projections}
        for start in range(0, len(records), PART):
            envelopes, refused = self._decode.batch(records[start : start + PART])
            decoded += len(envelopes)
            unreadable.extend(refused)
            items = self._steps(self._shared, envelopes, tallies)
            if self._shared_whole:
                shared.extend(items)
                continue
            accepted += len(items)  # and, kept by no list, freed with the part where they can be
            for name, _, parts, _ in self._projections:
                gathered[name].extend(self._steps(parts, items, tallies))
        for f in self._every:
            if id(f) in self._parted and tallies[id(f)].ins:
                f.end_batch(self._states[f.step_id])  # type: ignore[attr-defined]
        if self._shared_whole:
            shared = self._steps(self._shared_whole, shared, tallies)
            accepted = len(shared)
            gathered = {name: shared for name in gathered}
        finished = {
            name: output.pick(self._steps(whole, gathered[name], tallies))
            for name, output, _, whole in self._projections
        }
        self._report(out.rejects, len(records), decoded, unreadable, accepted, tallies)
        out.items.update(finished)
        for step_id, state in self._states.items():
            watermark = getattr(state, "watermark", None)
            if isinstance(watermark, int):
                observers.on_watermark(step_id, polled.partition, watermark)
        return out

    def snapshot(self) -> dict[str, Any]:
        """Every partition-local step's snapshot, by step id."""
        return {sid: self._local[sid].snapshot(state) for sid, state in self._states.items()}

    def _steps(
        self, steps: Sequence[Filter], items: list[Any], tallies: dict[int, _Tally]
    ) -> list[Any]:
        """Each step over the items in turn: what passes goes on, rejects are collected and
        skipped items counted (in the step's tally) and dropped."""
        for f in steps:
            if not items:
                break
            local = isinstance(f, PartitionLocal)
            outputs = self._fold(f, items) if local else _apply(f, items)  # type: ignore
            tally = tallies[id(f)]
            tally.ins += len(items)
            types = set(map(type, outputs))  # in C: most batches of most steps set none aside
            if types.isdisjoint(_ASIDE):
                passed = outputs
            else:
                passed = [o for o in outputs if type(o) not in _ASIDE]
                if Rejected in types:
                    tally.rejected.extend(o for o in outputs if type(o) is Rejected)
                if Skipped in types:
                    tally.skipped.update([o.why for o in outputs if type(o) is Skipped])
            tally.outs += len(passed)
            items = passed
        return items

    def _fold(self, f: PartitionLocal[Any], items: list[Any]) -> list[Output]:
        sid = f.step_id
        process = f.process_part if id(f) in self._parted else f.process
        if f.guards_records:
            return process(self._states[sid], items)
        saved = f.snapshot(self._states[sid])
        try:
            return process(self._states[sid], items)
        except Exception:
            pass
        # Replay the items from the snapshot a command at a time, each from its own snapshot.
        outputs: list[Output] = []
        state = self._states[sid] = f.restore(saved)
        for envelope in items:
            before = f.snapshot(state)
            try:
                outputs.extend(process(state, [envelope]))
            except Exception as exc:
                state = self._states[sid] = f.restore(before)
                outputs.append(f.failed(envelope, exc))
        return outputs

    def _report(
        self,
        rejects: list[Rejected],
        records: int,
        decoded: int,
        unreadable: list[Rejected],
        accepted: int,
        tallies: dict[int, _Tally],
    ) -> None:
        """The batch's rejects, in step order, and what each step did, to the observers."""
        observers = self._observers
        observers.on_step(DECODE_STEP, records, decoded, len(unreadable), 0)
        rejects.extend(unreadable)
        for r in unreadable:
            observers.on_rejected(r.step, r.reason.value, 1)
        shared = len(self._shared) + len(self._shared_whole)
        for n, f in enumerate(self._every):
            if n == shared:
                observers.on_accepted(accepted)
            tally = tallies[id(f)]
            if not tally.ins:
                continue
            rejects.extend(tally.rejected)
            for r in tally.rejected:
                observers.on_rejected(r.step, r.reason.value, 1)
            for why, count in tally.skipped.items():
                observers.on_skipped(f.step_id, why, count)
            observers.on_step(
                f.step_id, tally.ins, tally.outs, len(tally.rejected), tally.skipped.total()
            )
        if shared == len(self._every):
            observers.on_accepted(accepted)
