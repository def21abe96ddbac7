"""The control plane's words as types: what travels between the runtime, its API and the API's
client (statuses, blue/green states, histories, requests), and the states and stages a
deployment goes through.

The API answers with these Structs and the client decodes into the same ones, so the JSON on
the wire has one definition. A field that is `UNSET` is left out of the JSON: a status carries
`consumed`/`accepted` only for a deployment that runs in the answering runtime, a blue/green
state carries `green_*` only while a green is in flight.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from enum import StrEnum
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, UnsetType

from deploy.cluster import MAX_PROCESSES, MAX_WORKERS


class State(StrEnum):
    """How a deployment's run is doing (set by the run; recorded in the registry)."""

    CREATED = "created"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    COMPLETED = "completed"  # a bounded run that reached its end offsets
    FAILED = "failed"


class Desired(StrEnum):
    """What the operator wants of a deployment: a runtime resumes the ones that should run."""

    RUNNING = "running"
    STOPPED = "stopped"


class Stage(StrEnum):
    """A deployment's place in blue/green. `OUTSIDE`: not in the stable layer (a replay into a
    database of its own)."""

    OUTSIDE = ""
    ACTIVE = "active"
    GREEN = "green"
    DRAINING = "draining"
    RETIRED = "retired"
    ABORTED = "aborted"


#: stages whose deployment the stable views have a branch for
LIVE = (Stage.ACTIVE, Stage.GREEN, Stage.DRAINING)
#: stages of deployments that are gone (their database dropped): listed only when asked for
GONE = (Stage.RETIRED, Stage.ABORTED)


class Origin(StrEnum):
    """Where a spec came from: the user's own CLI may load any module; a spec that came over
    the API is held to the allow-list of whichever runtime loads it, at every load."""

    LOCAL = "local"
    API = "api"


#: promote's gate, in seconds: how long the oldest command green has not applied may have been
#: on the log. A green that keeps up is behind by its sinks' flush delay (an epoch at most).
MAX_BEHIND_S = 5.0
#: how long one promote request may wait for its gate
MAX_PROMOTE_WAIT_S = 300.0
MAX_SPEC = 512 * 1024
Text = Annotated[str, msgspec.Meta(max_length=MAX_SPEC)]


# -- answers --------------------------------------------------------------------------------


class Health(msgspec.Struct):
    status: str
    pid: int


#: a deployment's cluster on one machine: processes, and Bytewax workers in each
Processes = Annotated[int, msgspec.Meta(ge=1, le=MAX_PROCESSES)]
Workers = Annotated[int, msgspec.Meta(ge=1, le=MAX_WORKERS)]


class ProcessStatus(msgspec.Struct):
    """One process of a running deployment's cluster (0: the runtime's own) and the log
    partitions it reads."""

    process: int
    pid: int
    partitions: list[int]


class DeploymentStatus(msgspec.Struct, kw_only=True):
    """What `cqrs status` shows of one deployment (see `deploy.status.describe`)."""

    name: str
    pipeline: str
    version: int
    state: State
    desired: Desired
    stage: Stage
    error: str | None
    follow: bool
    start: dict[int, int]
    stop: dict[int, int] | None
    next: dict[int, int]
    end: dict[int, int]
    lag: dict[int, int]
    behind: dict[int, float | None] | None
    behind_s: float | None
    done: int
    total: int
    rows: dict[str, int]
    #: commands read and accepted, counted by the runtime that runs it (absent elsewhere)
    consumed: float | UnsetType = UNSET
    accepted: float | UnsetType = UNSET
    #: its shape (registered), and while it runs in the answering runtime, its processes
    processes: int = 1
    workers: int = 1
    cluster: list[ProcessStatus] | UnsetType = UNSET


class DeploymentHealth(DeploymentStatus, kw_only=True):
    """A status with what the dashboard's health table adds: rejections by reason and the
    end-to-end latency's p99 (None before any command went through)."""

    rejected: dict[str, float]
    latency_p99: float | None


class BlueGreenState(msgspec.Struct, kw_only=True):
    """Where a pipeline's blue/green stands: which deployment the pointer names and which is
    in each live stage; with a green in flight, how far it is."""

    pipeline: str
    pointer: str | None
    active: str | None
    green: str | None
    draining: str | None
    green_status: DeploymentStatus | UnsetType = UNSET
    green_lag: int | UnsetType = UNSET
    green_behind_s: float | UnsetType | None = UNSET
    green_failed: str | UnsetType | None = UNSET


class Version(msgspec.Struct):
    """One spec version of a pipeline, and what changed from the one before."""

    name: str
    version: int
    stage: Stage
    changes: list[str]


class Event(msgspec.Struct):
    """One line of a deployment's history (`at`: ISO 8601)."""

    name: str
    at: str
    event: str
    detail: str


class History(msgspec.Struct):
    pipeline: str
    versions: list[Version]
    events: list[Event]


class PanelData(msgspec.Struct, kw_only=True):
    """One business panel of the dashboard: its rows, or why it has none."""

    key: str
    title: str
    kind: str
    rows: list[list[Any]] | UnsetType = UNSET
    error: str | UnsetType = UNSET


class QueryResult(msgspec.Struct, frozen=True):
    """A query's answer. Its JSON (`to_json`) holds what JSON can: times as ISO 8601, decimals
    and UUIDs as text, bytes decoded."""

    columns: list[str]
    types: list[str]
    rows: list[list[Any]]

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "types": self.types,
            "rows": [[_jsonable(v) for v in row] for row in self.rows],
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> QueryResult:
        return cls(doc["columns"], doc["types"], doc["rows"])


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


class Dashboard(msgspec.Struct):
    panels: list[PanelData]
    deployments: list[DeploymentHealth]


# -- requests -------------------------------------------------------------------------------


class QueryRequest(msgspec.Struct, forbid_unknown_fields=True):
    sql: Annotated[str, msgspec.Meta(max_length=100_000)]


class ReplayRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A new deployment of a spec (`cqrs replay`): from `start` (empty: the spec's own start),
    bounded at `until` (default: now) unless it `follow`s the log, into the database `into`
    (default `<pipeline>_v<version>`)."""

    spec: Text
    source: Text = "<request>"
    start: str = msgspec.field(name="from", default="")
    until: str | None = None
    follow: bool = False
    into: str | None = None
    processes: Processes = 1
    workers: Workers = 1


class InitRequest(msgspec.Struct, forbid_unknown_fields=True):
    spec: Text
    source: Text = "<request>"
    processes: Processes = 1
    workers: Workers = 1


class PromoteRequest(msgspec.Struct, forbid_unknown_fields=True):
    force: bool = False
    max_behind: Annotated[float, msgspec.Meta(ge=0)] = MAX_BEHIND_S
    wait: Annotated[float, msgspec.Meta(ge=0, le=MAX_PROMOTE_WAIT_S)] = 0.0


class SkipRequest(msgspec.Struct, forbid_unknown_fields=True):
    partition: Annotated[int, msgspec.Meta(ge=0)]
    offset: Annotated[int, msgspec.Meta(ge=0)]


class Empty(msgspec.Struct, forbid_unknown_fields=True):
    """The body of a step that takes no options: `{}`."""


# -- a cluster across hosts (`cqrs run --addresses … --process-id i`) -------------------------

#: reports a member keeps between two asks (past that the oldest go: they are for monitoring)
MAX_REPORTS = 10_000


class MemberReport(msgspec.Struct, forbid_unknown_fields=True):
    """What a member (process i > 0 on another host) tells process 0 each time it asks for its
    run: who it is and the log partitions it reads, for `cqrs status`."""

    process: Annotated[int, msgspec.Meta(ge=1, lt=MAX_PROCESSES)]
    pid: Annotated[int, msgspec.Meta(ge=0, le=2**31)]
    partitions: Annotated[list[Annotated[int, msgspec.Meta(ge=0, le=2**31)]],
                          msgspec.Meta(max_length=100_000)] = []  # fmt: skip
    #: what its source and steps observed since its last ask, for process 0's metrics
    #: (`deploy.cluster.REPORTED` callbacks and their arguments; others are ignored)
    reports: Annotated[list[tuple[str, list[Any]]], msgspec.Meta(max_length=MAX_REPORTS)] = []


class MemberRun(msgspec.Struct):
    """Process 0's current run of a deployment, as a member needs it: its id (a new one each
    time the cluster restarts: a member whose run ended joins the next), whether process 0 is
    stopping it (the member then ends its partitions too), and what to build
    (`deploy.cluster.shared_payload`)."""

    run: str
    stopping: bool
    payload: dict[str, Any]
