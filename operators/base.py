"""The shapes a filter can take. The builder wires each shape into Bytewax its own way.

- `Stateless`: one envelope in, the same or a changed envelope out, or `None` (filtered out),
  or a `Rejected` (to the DLQ).
- `Keyed`: state per key (usually the aggregate); the state is an immutable value that Bytewax
  snapshots for recovery, so it must be picklable and never mutated in place.
- A projector is a filter whose outputs are table rows (`Projected`): the last step of a
  projection; it declares the `Table` it fills.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import msgspec

from commands.envelope import Envelope, Rejected
from sinks.ddl import Table

S = TypeVar("S")


class Projected(msgspec.Struct, frozen=True, gc=False):
    """A row for a projection table, with the log position it derives from."""

    partition: int
    offset: int
    row: tuple[Any, ...]


Output = Envelope | Rejected | Projected


class Filter(ABC):  # noqa: B024 - a marker base: the shapes below carry the abstract methods
    """Any step; `step_id` is stable and explicit, since Bytewax keys recovery state by it."""

    step_id: str = ""
    #: the table this step fills, for projectors (the builder names it after the projection);
    #: None for filters that pass envelopes on
    table: Table | None = None


class Stateless(Filter):
    @abstractmethod
    def apply(self, envelope: Envelope) -> Envelope | Rejected | None: ...


class Keyed(Filter, Generic[S]):
    @abstractmethod
    def key(self, envelope: Envelope) -> str: ...

    @abstractmethod
    def step(self, state: S | None, envelope: Envelope) -> tuple[S | None, Sequence[Output]]:
        """Fold one envelope into the key's state; returning `None` as state forgets the key."""
