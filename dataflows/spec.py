"""The pipeline spec: a YAML file naming the source, the filters and the projections.

Parsing is strict and happens before anything starts: an unknown key, a wrong type or an
unknown filter is refused with the file, the path inside it (`filters[3].window.size`) and
what was expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

import operators.builtin  # noqa: F401 - the built-in filters must be registered
import sinks.builtin  # noqa: F401 - the built-in sink kinds must be registered
from core.errors import SpecError
from core.params import describe_params
from core.schema import Table
from dataflows.spec_file import read_spec
from operators.base import Filter
from operators.code import AllowList, import_module, only
from operators.decode import MAX_RECORD_BYTES
from operators.registry import FILTERS, Registry
from sinks.clickhouse import SinkSpec
from sinks.output import SINKS, Declared, OutputRefused, SinkOutput

Name = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,62}\Z")]
#: a Kafka topic name (empty: the runtime's CQRS_TOPIC)
Topic = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._-]{0,200}\Z")]


class SourceSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: the command log topic; empty means the runtime's CQRS_TOPIC
    topic: Topic = ""
    start: Literal["earliest", "latest"] = "earliest"
    #: larger records are rejected (reason too_large) before decoding
    max_record_bytes: Annotated[int, msgspec.Meta(ge=1024)] = MAX_RECORD_BYTES


class ProjectionSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Name
    steps: Annotated[list[str | dict[str, Any]], msgspec.Meta(min_length=1)]
    sink: SinkSpec = SinkSpec()
    #: for a projection ending in `forward`: the topic it writes
    topic: Topic = ""


class PipelineSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Name
    version: Annotated[int, msgspec.Meta(ge=1)]
    projections: Annotated[list[ProjectionSpec], msgspec.Meta(min_length=1)]
    description: str = ""
    source: SourceSpec = SourceSpec()
    filters: list[str | dict[str, Any]] = []
    #: Python modules to import first, so the filters they register can be named here
    modules: list[str] = []

    @property
    def deployment(self) -> str:
        """`<pipeline>_v<version>`: the deployment's database, recovery dir and progress key."""
        return f"{self.name}_v{self.version}"


@dataclass(frozen=True)
class Projection:
    """A projection: its steps, and where its results go (`output`: a table, a topic, …)."""

    name: str
    steps: tuple[Filter, ...]
    output: SinkOutput

    @property
    def projector(self) -> Filter:
        return self.steps[-1]


@dataclass(frozen=True)
class Pipeline:
    """A spec with every filter resolved and built: what the dataflow builder consumes."""

    spec: PipelineSpec
    source: str  # where the spec came from, for messages
    filters: tuple[Filter, ...]
    projections: tuple[Projection, ...]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def version(self) -> int:
        return self.spec.version

    @property
    def deployment(self) -> str:
        return self.spec.deployment

    @property
    def tables(self) -> tuple[Table, ...]:
        """Every ClickHouse table its projections write (each keyed by its projection's name)."""
        return tuple(t for p in self.projections for t in p.output.tables)


def load_pipeline(path: Path | str, registry: Registry = FILTERS) -> Pipeline:
    """Read, check and resolve a spec file; every problem is a `SpecError` naming the place."""
    path = Path(path)
    return parse_pipeline(read_spec(path), str(path), registry)


def parse_pipeline(
    text: bytes | str, source: str, registry: Registry = FILTERS, allowed: AllowList | None = None
) -> Pipeline:
    """Check and resolve a spec. With `allowed` (a spec from the API), the modules it names
    must be on that allow-list, checked before anything is imported."""
    with only(allowed):
        return _parse(text, source, registry)


def _parse(text: bytes | str, source: str, registry: Registry) -> Pipeline:
    try:
        spec = msgspec.yaml.decode(text, type=PipelineSpec)
    except msgspec.ValidationError as exc:
        raise SpecError(f"{source}: {_pathify(str(exc))}") from None
    except msgspec.DecodeError as exc:
        raise SpecError(f"{source}: not valid YAML ({exc})") from None
    for i, module in enumerate(spec.modules):
        try:
            import_module(module)
        except ImportError as exc:
            raise SpecError(f"{source}: modules[{i}]: cannot import {module!r} ({exc})") from None
        except ValueError as exc:
            raise SpecError(f"{source}: modules[{i}]: {exc}") from None
    seen: set[str] = set()
    filters = tuple(
        _build_step(entry, f"filters[{i}]", source, registry, seen)
        for i, entry in enumerate(spec.filters)
    )
    for i, f in enumerate(filters):
        if f.writes is not None:
            raise SpecError(
                f"{source}: filters[{i}]: {f.step_id!r} is a projector (it writes a table or a "
                f"topic), so it belongs at the end of a projection's steps"
            )
    projections = []
    names: set[str] = set()
    for p, proj in enumerate(spec.projections):
        where = f"projections[{p}]"
        if proj.name in names:
            raise SpecError(f"{source}: {where}.name: projection {proj.name!r} is named twice")
        names.add(proj.name)
        steps = tuple(
            _build_step(entry, f"{where}.steps[{i}]", source, registry, seen, scope=proj.name)
            for i, entry in enumerate(proj.steps)
        )
        last = steps[-1]
        if last.writes is None:
            raise SpecError(
                f"{source}: {where}.steps[{len(steps) - 1}]: the last step of a projection must "
                f"write a table or a topic (a projector such as order_rows, tumbling or "
                f"forward), and {last.step_id!r} does not"
            )
        for i, step in enumerate(steps[:-1]):
            if step.writes is not None:
                raise SpecError(
                    f"{source}: {where}.steps[{i}]: {step.step_id!r} is a projector, so it can "
                    f"only be the last step"
                )
        output = _output(last, proj, f"{source}: {where}")
        projections.append(Projection(proj.name, steps, output))
    for i, f in enumerate(filters):
        unknown = sorted(getattr(f, "targets", frozenset()) - names)
        if unknown:
            raise SpecError(
                f"{source}: filters[{i}]: route names projections {unknown} that this spec "
                f"does not have (it has {sorted(names)})"
            )
    return Pipeline(spec=spec, source=source, filters=filters, projections=tuple(projections))


def _output(projector: Filter, proj: ProjectionSpec, where: str) -> SinkOutput:
    """The projection's output, of the kind its projector writes."""
    kind = SINKS.get(projector.writes or "")
    if kind is None:
        raise SpecError(
            f"{where}.steps[{len(proj.steps) - 1}]: {projector.step_id!r} writes a sink of kind "
            f"{projector.writes!r}, which is not registered (registered: "
            f"{', '.join(SINKS.names())})"
        )
    declared = Declared(proj.name, projector.step_id, projector.table, proj.topic, proj.sink)
    try:
        return kind.build(declared)
    except OutputRefused as exc:
        raise SpecError(f"{where}.{exc.field}: {exc}") from None


_STEP_ID = re.compile(r"[a-z][a-z0-9_]{0,62}")


def _build_step(
    entry: str | dict[str, Any],
    where: str,
    source: str,
    registry: Registry,
    seen: set[str],
    scope: str = "",
) -> Filter:
    """An entry is `name` or `{name: params}`, optionally with an `id:` beside the name. A
    projection's steps are scoped by it: `revenue_per_minute/tumbling`."""
    if isinstance(entry, str):
        name, params, step_id = entry, {}, entry
    else:
        entry = dict(entry)
        step_id = entry.pop("id", None)
        if len(entry) != 1:
            raise SpecError(
                f"{source}: {where}: expected one filter name (with its parameters) and an "
                f"optional `id`, got keys {sorted(entry)}"
            )
        ((name, params),) = entry.items()
        params = {} if params is None else params
        step_id = step_id or name
        if not isinstance(params, dict):
            raise SpecError(f"{source}: {where}.{name}: parameters must be a mapping")
    registration = registry.get(name)
    if registration is None:
        raise SpecError(
            f"{source}: {where}: unknown filter {name!r}; registered filters: "
            f"{', '.join(registry.names())} (a filter of your own needs its module in `modules`)"
        )
    if not isinstance(step_id, str) or not _STEP_ID.fullmatch(step_id):
        raise SpecError(
            f"{source}: {where}.id: {step_id!r} is not a step id: use lowercase letters, digits "
            f"and '_', starting with a letter"
        )
    if scope:
        step_id = f"{scope}/{step_id}"
    if step_id in seen:
        raise SpecError(
            f"{source}: {where}: step id {step_id!r} is used twice; give one of them an `id:`"
        )
    seen.add(step_id)
    try:
        typed = msgspec.convert(params, registration.params)
    except msgspec.ValidationError as exc:
        message = f"{source}: {where}.{name}: {_pathify(str(exc))}"
        raise SpecError(message + _what_to_give(str(exc), registration.params)) from None
    try:
        return registration.factory(step_id, typed)
    except (ValueError, TypeError) as exc:
        raise SpecError(f"{source}: {where}.{name}: {exc}") from None


_MISSING = re.compile(r"missing required field `([^`]+)`")


def _what_to_give(message: str, params: type[msgspec.Struct]) -> str:
    """For a missing parameter: what to give, from the parameter's own doc."""
    found = _MISSING.search(message)
    if not found:
        return ""
    docs = {p.name: p.doc for p in describe_params(params)}
    doc = docs.get(found.group(1))
    return f"; give `{found.group(1)}: …`, {doc}" if doc else ""


_MSGSPEC_PATH = re.compile(r" - at `\$(.*)`$")


def _pathify(message: str) -> str:
    """msgspec says '... - at `$.filters[3].x`'; say 'at filters[3].x: ...' instead."""
    found = _MSGSPEC_PATH.search(message)
    if not found:
        return message
    path = found.group(1).lstrip(".")
    return f"at {path or 'top level'}: {message[: found.start()]}"
