"""Where results go, as types: one `SinkOutput` per kind of target, registered by name.

A projector says which kind it writes (`Filter.writes`: "table", "topic"); the spec builds that
kind's output for the projection from what it declares (`Declared`). From then on the output
alone knows its target: how to prepare it before a run (a table, a topic), how to build its
Bytewax sink, and which of a batch's items are its own. A new kind of sink is one module in
`sinks/` and one `register_sink`: nothing that runs, draws or describes a pipeline changes.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import msgspec
from bytewax.dataflow import Stream
from bytewax.outputs import Sink
from clickhouse_connect.driver.client import Client

from core.outputs import BatchOutput, Output
from core.params import Param, describe_params
from core.schema import Table
from sinks.store import open_client

ClientFactory = Callable[[str], Client]
FlushObserver = Callable[[str, int, float], None]  # (table, rows, seconds)
WrittenObserver = Callable[[list[int]], None]  # log times of the batches just written
RetryObserver = Callable[[str, BaseException], None]  # (table, error)
#: what `stateful_batch` gives: (partition key, what one batch of that partition produced)
Results = Stream[tuple[str, BatchOutput]]


class OutputRefused(ValueError):
    """A projection's target cannot be built from what the spec says; `field` is the key of
    the projection that is at fault (the spec puts it in its message)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Declared:
    """What a spec says about one projection's target: the projection, its projector (its step
    id and the table it declares, if any), and the projection's own `topic` and `sink`."""

    projection: str
    step_id: str
    table: Table | None
    topic: str
    #: the projection's `sink:` settings (`sinks.clickhouse.SinkSpec`)
    sink: Any


@dataclass(frozen=True)
class SinkContext:
    """What a deployment hands its outputs: where things are, and whom to tell."""

    #: the deployment's name, which is also its ClickHouse database
    deployment: str
    brokers: str
    #: the command log (the DLQ is named after it)
    log_topic: str
    clickhouse_dsn: str
    partitions: Sequence[int]
    client_factory: ClientFactory = open_client
    #: the ClickHouse cluster the tables are made on (`ON CLUSTER`, replicated, sharded); None:
    #: one server or the embedded engine
    cluster: str | None = None
    #: inserts per table that a restart may repeat (the dedup window must hold them)
    dedup_inserts: int = 0
    on_flush: FlushObserver | None = None
    on_retry: RetryObserver | None = None
    on_written: WrittenObserver | None = None


class SinkOutput(ABC):
    """One projection's target (or the DLQ's). Constructors do no I/O: `prepare` does, before
    a run, and the sink opens its connections when Bytewax builds its partitions."""

    #: the name a projector's `writes` gives, and `cqrs sinks` lists
    kind: ClassVar[str] = ""
    #: what the spec may set for this kind (documented by `cqrs sinks`)
    params: ClassVar[type[msgspec.Struct] | None] = None

    @classmethod
    @abstractmethod
    def build(cls, declared: Declared) -> SinkOutput:
        """The output for a projection; `OutputRefused` names the spec's field at fault."""

    @property
    def tables(self) -> tuple[Table, ...]:
        """The ClickHouse tables it writes (their progress rows and stable views)."""
        return ()

    @abstractmethod
    def prepare(self, client: Client, ctx: SinkContext) -> None:
        """Create or check the target before a run; idempotent."""

    @abstractmethod
    def sink(self, ctx: SinkContext) -> Sink[Any]:
        """The Bytewax sink that writes the items of `stream`."""

    @abstractmethod
    def pick(self, produced: list[Output]) -> list[Any]:
        """Its items among what the projection's last step output for one batch."""

    @abstractmethod
    def stream(self, results: Results) -> Stream[Any]:
        """The stream its sink takes, from every batch's results (its step ids are part of
        the recovery state, so they never change)."""

    @abstractmethod
    def target(self, deployment: str) -> str:
        """What it writes, by name (`orders_v1.orders`, a topic)."""

    def describe(self, deployment: str) -> str:
        return f"{self.kind} {self.target(deployment)}"

    def label(self, deployment: str) -> str:
        """How a drawing of the pipeline names the target."""
        return self.describe(deployment)


K = TypeVar("K", bound=type[SinkOutput])


@dataclass(frozen=True)
class SinkKind:
    """A registered kind, as `cqrs sinks` shows it."""

    name: str
    summary: str
    doc: str
    params: list[Param]


class SinkRegistry:
    """Sink kinds by name; registering a name twice is an error."""

    def __init__(self) -> None:
        self._by_name: dict[str, type[SinkOutput]] = {}

    def register(self, output: K) -> K:
        name = output.kind
        if not name or name in self._by_name:
            raise ValueError(f"sink kind {name!r} is unnamed or already registered")
        self._by_name[name] = output
        return output

    def get(self, name: str) -> type[SinkOutput] | None:
        return self._by_name.get(name)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def describe(self) -> list[SinkKind]:
        kinds = []
        for name in self.names():
            output = self._by_name[name]
            doc = inspect.cleandoc(output.__doc__ or "")
            params = describe_params(output.params) if output.params is not None else []
            summary = " ".join(doc.split("\n\n")[0].split())
            kinds.append(SinkKind(name, summary, doc, params))
        return kinds


SINKS = SinkRegistry()
register_sink = SINKS.register
