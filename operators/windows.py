"""Windowed projections on event time: `tumbling`, `sliding` and `session`.

Windows live per log partition. A partition's watermark is the newest event time it has seen,
but never more than `max_future` past the log time of the command that brought it: the log
stamps its own time (LogAppendTime), so a command dated an hour ahead still joins its window,
yet cannot make every later command of its partition late. A command older than the watermark
minus `lateness` is late. Because a partition is read in log order, what is late is the same
in every run and every replay.

A command is folded in two steps: first everything that can raise is worked out (its event
time, group and every aggregation's input), then the windows change. One that raises goes to
the DLQ (`filter_error`) and leaves the state exactly as it was.

Each partition writes partial rows, one per window, group and partition, and the stable view
merges them (see `operators.aggregates`). Tumbling and sliding windows write their row each
time a batch touches them (the newest version wins), so an open window is visible while it
fills; a session writes its row once it closes, since a late event may still merge sessions.
A late command goes to the DLQ (`late: dlq`), or (`late: update`) into a pane row of its own
that the view adds to its window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from core.envelope import Envelope, Reason, Rejected
from core.outputs import Output, Projected
from core.schema import Table, is_ident
from operators.aggregates import AggSpec, build
from operators.base import PartitionLocal
from operators.durations import millis
from operators.fields import MISSING, attr_name, column, getter
from operators.registry import register_filter

GroupKey = tuple[str, ...]
WindowKey = tuple[int, GroupKey]  # (window start, group)


class WindowParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    aggregates: Annotated[dict[str, AggSpec], msgspec.Meta(min_length=1)]
    #: output column -> field path; empty: one group for everything
    group_by: dict[str, str] = {}
    #: field path of the event time (epoch milliseconds)
    time: str = "ts"
    lateness: str | int = "0s"
    late: Literal["dlq", "update"] = "dlq"
    #: how far past its log time one command may move the watermark
    max_future: str | int = "5s"


class TumblingParams(WindowParams, frozen=True, forbid_unknown_fields=True):
    size: str | int = "1m"


class SlidingParams(WindowParams, frozen=True, forbid_unknown_fields=True):
    size: str | int = "5m"
    hop: str | int = "1m"


class SessionParams(WindowParams, frozen=True, forbid_unknown_fields=True):
    gap: str | int = "5m"


@dataclass
class Acc:
    """A window's partial for one group: the aggregations' partials and its last offset."""

    end: int
    partials: list[Any]
    offset: int = -1
    start: int = 0


class WindowState:
    __slots__ = ("open", "watermark")

    def __init__(self, watermark: int | None = None, open_: dict[Any, Any] | None = None) -> None:
        self.watermark = watermark
        self.open: dict[Any, Any] = open_ if open_ is not None else {}


#: what a command brings to its windows, worked out before any window changes
Prepared = tuple[int, GroupKey, Sequence[Any]]  # (event time, group, each aggregation's input)


class Windowed(PartitionLocal[WindowState]):
    """What the three window kinds share: grouping, aggregation, lateness and rows."""

    guards_records = True

    def __init__(self, step_id: str, params: WindowParams) -> None:
        self.step_id = step_id
        self.lateness = millis(params.lateness, "lateness")
        self.max_future = millis(params.max_future, "max_future")
        self.late_policy = params.late
        self._time = getter(params.time)
        self._groups = [(attr_name(col), getter(path)) for col, path in params.group_by.items()]
        self._times = column(params.time)
        self._group_columns = [column(path) for path in params.group_by.values()]
        for col in params.group_by:
            if not is_ident(col):
                raise ValueError(f"group_by: {col!r} cannot be a column (at most 128 characters)")
        self.aggregations = [build(name, spec) for name, spec in params.aggregates.items()]
        names = [c for agg in self.aggregations for c, _ in agg.columns]
        self.group_columns = [col for col, _ in self._groups]
        clash = {"window_start", "window_end", "partition", "pane", "version"}
        taken = set()
        for name in [*self.group_columns, *names]:
            if name in clash or name in taken:
                raise ValueError(f"column {name!r} is used twice (or is a reserved name)")
            taken.add(name)
        key = ("window_start", *self.group_columns, "partition", "pane")
        self.writes = "table"
        self.table = Table(
            name=step_id,
            columns=(
                ("window_start", "DateTime64(3, 'UTC')"),
                ("window_end", "DateTime64(3, 'UTC')"),
                *((col, "LowCardinality(String)") for col in self.group_columns),
                ("partition", "UInt16"),
                ("pane", "UInt64"),
                *(col for agg in self.aggregations for col in agg.columns),
                ("version", "UInt64"),
            ),
            order_by=key,
            version="version",
        )

    # -- what each kind decides ----------------------------------------------------------------

    def windows_of(self, ts: int) -> list[tuple[int, int]]:
        """The (start, end) of every window an event at `ts` falls in."""
        raise NotImplementedError

    # -- the fold ------------------------------------------------------------------------------

    def group_of(self, envelope: Envelope) -> GroupKey:
        return tuple("" if (v := get(envelope)) is MISSING else str(v) for _, get in self._groups)

    def new_acc(self, start: int, end: int) -> Acc:
        return Acc(end=end, start=start, partials=[agg.start() for agg in self.aggregations])

    def fold(self, acc: Acc, inputs: list[Any], offset: int) -> None:
        partials = acc.partials
        for i, agg in enumerate(self.aggregations):
            partials[i] = agg.add(partials[i], inputs[i])
        acc.offset = max(acc.offset, offset)

    def row(self, group: GroupKey, acc: Acc, partition: int, pane: int) -> Projected:
        values: list[Any] = [acc.start, acc.end, *group, partition, pane]
        for agg, partial in zip(self.aggregations, acc.partials, strict=True):
            values.extend(agg.to_columns(partial))
        values.append(acc.offset)
        return Projected(partition, acc.offset, tuple(values))

    def admit(self, state: WindowState, envelope: Envelope, out: list[Output]) -> Prepared | None:
        """What an envelope brings to its windows, the watermark advanced; or None when it went
        to `out` instead: without an event time, late, or raising while being read."""
        try:
            prepared = self._prepare(envelope)
        except Exception as exc:
            out.append(self.failed(envelope, exc))
            return None
        if isinstance(prepared, Rejected):
            out.append(prepared)
            return None
        ts = prepared[0]
        if state.watermark is not None and ts < state.watermark - self.lateness:
            out.extend(self.late_output(envelope, prepared, state.watermark))
            return None
        mark = min(ts, envelope.record.timestamp + self.max_future)
        if state.watermark is None or mark > state.watermark:
            state.watermark = mark
        return prepared

    def _prepare(self, envelope: Envelope) -> Prepared | Rejected:
        ts = self._time(envelope)
        if not isinstance(ts, int) or isinstance(ts, bool):
            return self.reject(envelope, Reason.INVALID_DATA, "no integer event time")
        inputs = [agg.extract(envelope) for agg in self.aggregations]
        return ts, self.group_of(envelope), inputs

    def restore(self, snapshot: Any | None) -> WindowState:
        if snapshot is None:
            return WindowState()
        watermark, open_ = snapshot
        return WindowState(watermark, {k: _thaw(v) for k, v in open_.items()})

    def snapshot(self, state: WindowState) -> Any:
        return state.watermark, {k: _freeze(v) for k, v in state.open.items()}

    def late_output(self, envelope: Envelope, prepared: Prepared, watermark: int) -> list[Output]:
        ts, group, inputs = prepared
        if self.late_policy == "dlq":
            detail = (
                f"event time {ts} is {(watermark - ts) / 1000:.1f}s behind this partition's "
                f"newest ({watermark}); allowed lateness is {self.lateness / 1000:.1f}s"
            )
            return [self.reject(envelope, Reason.LATE, detail)]
        rows: list[Output] = []
        for start, end in self.windows_of(ts):
            acc = self.new_acc(start, end)
            self.fold(acc, inputs, envelope.record.offset)
            rows.append(self.row(group, acc, envelope.record.partition, envelope.record.offset))
        return rows

    def view(self, source: str) -> str:
        keys = ["window_start", "window_end", *self.group_columns]
        cols = ", ".join(f"`{k}`" for k in keys)
        merged = ", ".join(sql for agg in self.aggregations for sql in agg.merge_sql)
        return f"SELECT {cols}, {merged} FROM {source} FINAL GROUP BY {cols}"


class _Fixed(Windowed):
    """Tumbling and sliding: fixed windows, rows written as they fill (tumbling's hop is its
    size)."""

    size: int
    hop: int

    def windows_of(self, ts: int) -> list[tuple[int, int]]:
        last = ts - ts % self.hop  # `process` inlines this range
        return [(s, s + self.size) for s in range(last - self.size + self.hop, last + 1, self.hop)]

    def process(self, state: WindowState, batch: list[Envelope]) -> list[Output]:
        out: list[Output] = []
        touched: dict[WindowKey, Acc] = {}
        open_ = state.open
        lateness, max_future, size, hop = self.lateness, self.max_future, self.size, self.hop
        one = size == hop  # one window an event: no range to build for each
        adds = list(enumerate(agg.add for agg in self.aggregations))
        watermark = state.watermark
        for envelope, ts, group, inputs in zip(batch, *self._prepare_batch(batch), strict=True):
            # what `admit` does, inlined: this loop runs for every command a window takes
            if type(ts) is not int and (not isinstance(ts, int) or isinstance(ts, bool)):
                # no event time: `_prepare` says so (it reads what the column read); or raised
                out.append(ts if type(ts) is Rejected else self._prepare(envelope))
                continue
            record = envelope.record
            if watermark is not None and ts < watermark - lateness:
                out.extend(self.late_output(envelope, (ts, group, inputs), watermark))
                continue
            mark = min(ts, record.timestamp + max_future)
            if watermark is None or mark > watermark:
                watermark = mark
            offset = record.offset
            last = ts - ts % hop
            for start in (last,) if one else range(last - size + hop, last + 1, hop):
                key = (start, group)
                acc = open_.get(key)
                if acc is None:
                    acc = open_[key] = self.new_acc(start, start + size)
                partials = acc.partials
                for i, add in adds:
                    partials[i] = add(partials[i], inputs[i])
                if offset > acc.offset:
                    acc.offset = offset
                touched[key] = acc
        state.watermark = watermark
        partition = batch[0].record.partition if batch else 0
        for (_, group), acc in touched.items():
            out.append(self.row(group, acc, partition, 0))
        if watermark is not None:
            horizon = watermark - lateness
            for key in [k for k, acc in open_.items() if acc.end <= horizon]:
                del open_[key]
        return out

    def _prepare_batch(self, batch: list[Envelope]) -> tuple[list[Any], list[Any], list[Any]]:
        """Each command's event time (unchecked), group and inputs, read by columns; where that
        raised, by `_prepare`, with the `Rejected` of a command in place of its time."""
        try:
            groups = [
                ["" if v is MISSING else str(v) for v in values(batch)]
                for values in self._group_columns
            ]
            extracted = [agg.extract_batch(batch) for agg in self.aggregations]
            inputs = list(zip(*extracted, strict=True))
            times = self._times(batch)
            return times, list(zip(*groups, strict=True)) if groups else [()] * len(batch), inputs
        except Exception:
            pass
        each: list[Any] = []
        for envelope in batch:
            try:
                prepared = self._prepare(envelope)
            except Exception as exc:
                prepared = self.failed(envelope, exc)
            each.append((prepared, None, None) if type(prepared) is Rejected else prepared)
        return tuple(map(list, zip(*each, strict=True))) if each else ([], [], [])  # type: ignore


@register_filter("tumbling", params=TumblingParams)
class Tumbling(_Fixed):
    """Fixed, non-overlapping windows of `size` on event time."""

    def __init__(self, step_id: str, params: TumblingParams) -> None:
        self.size = self.hop = millis(params.size, "size")
        if self.size <= 0:
            raise ValueError("size: must be above zero")
        super().__init__(step_id, params)


@register_filter("sliding", params=SlidingParams)
class Sliding(_Fixed):
    """Windows of `size` starting every `hop`: an event falls in size/hop of them."""

    def __init__(self, step_id: str, params: SlidingParams) -> None:
        self.size = millis(params.size, "size")
        self.hop = millis(params.hop, "hop")
        if self.hop <= 0 or self.size <= 0 or self.size % self.hop:
            raise ValueError(
                f"size ({params.size}) must be a positive multiple of hop ({params.hop})"
            )
        super().__init__(step_id, params)


@register_filter("session", params=SessionParams)
class Session(Windowed):
    """Per group, events less than `gap` apart form a session; written when it closes."""

    def __init__(self, step_id: str, params: SessionParams) -> None:
        self.gap = millis(params.gap, "gap")
        if self.gap <= 0:
            raise ValueError("gap: must be above zero")
        super().__init__(step_id, params)

    def windows_of(self, ts: int) -> list[tuple[int, int]]:
        return [(ts, ts + self.gap)]

    def process(self, state: WindowState, batch: list[Envelope]) -> list[Output]:
        out: list[Output] = []
        sessions: dict[GroupKey, list[Acc]] = state.open
        for envelope in batch:
            prepared = self.admit(state, envelope, out)
            if prepared is None:
                continue
            ts, group, inputs = prepared
            self._add(sessions.setdefault(group, []), ts, inputs, envelope.record.offset)
        if state.watermark is not None:
            horizon = state.watermark - self.lateness
            partition = batch[0].record.partition if batch else 0
            for group in list(sessions):
                kept = []
                for acc in sessions[group]:
                    if acc.end <= horizon:  # no allowed event can reach it any more
                        out.append(self.row(group, acc, partition, 0))
                    else:
                        kept.append(acc)
                if kept:
                    sessions[group] = kept
                else:
                    del sessions[group]
        return out

    def _add(self, accs: list[Acc], ts: int, inputs: list[Any], offset: int) -> None:
        """Extend the session the event touches, merging any it bridges."""
        hit = [a for a in accs if a.start - self.gap < ts < a.end]
        acc = self.new_acc(ts, ts + self.gap)
        for other in hit:
            accs.remove(other)
            acc = self._merge(acc, other)
        self.fold(acc, inputs, offset)
        acc.start = min(acc.start, ts)
        acc.end = max(acc.end, ts + self.gap)
        accs.append(acc)

    def _merge(self, a: Acc, b: Acc) -> Acc:
        merged = self.new_acc(min(a.start, b.start), max(a.end, b.end))
        merged.offset = max(a.offset, b.offset)
        merged.partials = [
            agg.merge(x, y)
            for agg, x, y in zip(self.aggregations, a.partials, b.partials, strict=True)
        ]
        return merged


def _freeze(value: Any) -> Any:
    if isinstance(value, Acc):
        return (value.start, value.end, value.offset, tuple(_copy(p) for p in value.partials))
    if isinstance(value, list):
        return [_freeze(v) for v in value]
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple) and len(value) == 4 and isinstance(value[3], tuple):
        start, end, offset, partials = value
        return Acc(end=end, start=start, offset=offset, partials=[_copy(p) for p in partials])
    if isinstance(value, list):
        return [_thaw(v) for v in value]
    return value


def _copy(partial: Any) -> Any:
    return partial.copy() if isinstance(partial, set | dict) else partial
