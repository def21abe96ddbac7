"""The shapes a filter can take. The builder wires each shape into Bytewax its own way.

- `Stateless`: one envelope in; out comes the same or a changed envelope, a `Rejected` (to the
  DLQ), or a `Skipped` (filtered out or deduplicated: counted, not an error).
- `PartitionLocal`: state for one log partition, folded batch by batch. Every command of an
  aggregate is on one partition in log order, so per-aggregate state, dedupe and windows can
  all live here, and a replay sees the same order, hence the same results.
- `Keyed`: the common case of `PartitionLocal`: one immutable state value per key.

No record may stop a pipeline: an exception a step raises on one command sends that command to
the DLQ (`filter_error`) and the batch goes on. For stateless steps the executor sees to it
(and a stateless step may take the whole batch at once, `apply_batch`). A
partition-local step folds a batch into state it changes in place, so it guards each record in
its own loop, working out everything that can raise before it changes anything
(`guards_records`); for any other, the executor keeps a snapshot to fall back on.

A projector is the last step of a projection: it says which kind of sink it `writes`, and turns
envelopes into `Projected` rows for the `Table` it declares, or into `Forwarded` records for a
topic.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from core.envelope import Envelope, Rejected, failure
from core.outputs import Output
from core.schema import Table

S = TypeVar("S")


class Filter(ABC):  # noqa: B024 - a marker base: the shapes below carry the abstract methods
    """Any step; `step_id` is stable and explicit, since Bytewax keys recovery state by it."""

    step_id: str = ""
    #: the kind of sink a projector writes (a name registered in `sinks.output.SINKS`:
    #: "table", "topic"); None for any other step
    writes: str | None = None
    #: the table a projector of kind "table" fills (the spec names it after the projection)
    table: Table | None = None

    def view(self, source: str) -> str:
        """The stable view's query over this projector's table (`source` is its quoted name)."""
        return f"SELECT * FROM {source} FINAL"

    def reject(self, envelope: Envelope, reason: Any, detail: str) -> Rejected:
        return Rejected(record=envelope.record, step=self.step_id, reason=reason, detail=detail)

    def failed(self, envelope: Envelope, exc: BaseException) -> Rejected:
        """The reject of a command this step raised on (`filter_error`)."""
        return failure(envelope.record, self.step_id, exc)


class Stateless(Filter):
    @abstractmethod
    def apply(self, envelope: Envelope) -> Output: ...

    def apply_batch(self, batch: list[Envelope]) -> list[Output]:
        """`apply` over a batch, one output per envelope in order.

        A filter overrides this where working on the batch's columns costs less Python per
        command than calling `apply` for each. It may raise on a batch it cannot take as a
        whole: the executor then runs that batch again through `apply`, a command at a time,
        so the outputs must be exactly what `apply` would give (the property tests check it).
        """
        apply = self.apply
        return [apply(e) for e in batch]


class PartitionLocal(Filter, Generic[S]):
    #: True when `process` never raises for one record and leaves the state as it was before a
    #: record it rejects for raising; otherwise the executor snapshots the state before each
    #: batch and, if `process` raises, replays the batch a record at a time from the snapshot
    guards_records: bool = False
    #: True when taking a batch in consecutive parts (`process_part` on each, then `end_batch`)
    #: gives the outputs, one part's after another, and the state that `process` over the whole
    #: batch gives: the executor then runs the step over parts of a poll (see its `run`)
    in_parts: bool = False

    @abstractmethod
    def restore(self, snapshot: Any | None) -> S:
        """The working state from a snapshot (None: a fresh partition)."""

    @abstractmethod
    def process(self, state: S, batch: list[Envelope]) -> list[Output]:
        """Fold a batch (in log order) into the state, which may be changed in place."""

    @abstractmethod
    def snapshot(self, state: S) -> Any:
        """An immutable, picklable copy of the state for Bytewax recovery."""

    def process_part(self, state: S, batch: list[Envelope]) -> list[Output]:
        """`process` over one part of a batch (see `in_parts`)."""
        return self.process(state, batch)

    def end_batch(self, state: S) -> None:
        """What is left to do once every part of a batch has been through `process_part`."""


class Keyed(PartitionLocal[dict[str, Any]], Generic[S]):
    """One immutable state value per key; returning `None` as state forgets the key.

    `step` returns the new value rather than changing the old one, so a command it raises on
    leaves its key's state exactly as before and goes to the DLQ."""

    guards_records = True
    in_parts = True  # `process` folds one command after another: a part is a shorter batch

    @abstractmethod
    def key(self, envelope: Envelope) -> str: ...

    @abstractmethod
    def step(self, state: S | None, envelope: Envelope) -> tuple[S | None, Sequence[Output]]: ...

    def restore(self, snapshot: Any | None) -> dict[str, Any]:
        return dict(snapshot) if snapshot else {}

    def process(self, state: dict[str, Any], batch: list[Envelope]) -> list[Output]:
        out: list[Output] = []
        key_of, step = self.key, self.step
        for envelope in batch:
            try:
                key = key_of(envelope)
                new, emitted = step(state.get(key), envelope)
            except Exception as exc:
                out.append(self.failed(envelope, exc))
                continue
            if new is None:
                state.pop(key, None)
            else:
                state[key] = new
            out.extend(emitted)
        return out

    def snapshot(self, state: dict[str, Any]) -> dict[str, Any]:
        # The values are immutable, so a shallow copy cannot be changed by later batches.
        return dict(state)
