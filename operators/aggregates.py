"""Window aggregations, computed as partials that ClickHouse merges.

A windowed projection writes one partial row per window, group and log partition; the stable
view merges the partials of all partitions (and of late panes). So every aggregation here says
three things: how to fold a value into its partial, which columns hold the partial, and the SQL
that merges partials into the answer. Each merge is exact, except `approx_count_distinct`: a
KMV sketch (the k smallest 64-bit hashes), whose union is again a sketch.

Folding is two steps: `extract` reads what a command adds (and is where a strange value
raises: a number too large for a float, a key nested too deep to print), then `add` puts it
into the partial and cannot raise. A window extracts every aggregation's input before it
changes any partial, so a command that raises leaves every window as it was.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from core.envelope import Envelope
from core.schema import is_ident
from operators.fields import MISSING, Column, column, getter

KMV_K = 1024


class TopK(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: a field path whose value is the key (one per command) ...
    field: str = ""
    #: ... or a path to a list of items, each counted under its `key` with its `weight`
    items: str = ""
    key: str = ""
    weight: str = ""
    k: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10


class ApproxDistinct(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    field: str


AggSpec = str | dict[str, Any]


@dataclass(frozen=True)
class Aggregation:
    """One named aggregation: its partial's columns, how to start and fold it, how to merge."""

    name: str
    columns: tuple[tuple[str, str], ...]
    start: Callable[[], Any]
    #: what a command adds (None: nothing); may raise on a strange value
    extract: Callable[[Envelope], Any]
    #: the partial with an extracted input added (None is ignored); never raises
    add: Callable[[Any, Any], Any]
    to_columns: Callable[[Any], tuple[Any, ...]]
    merge_sql: tuple[str, ...]  # one SQL expression per answer column, over the partials
    merge: Callable[[Any, Any], Any]  # two partials into one (when session windows merge)
    #: `extract` over a batch, where a column costs less than a call per command; it may raise
    #: where `extract` would on one command (the window then extracts a command at a time)
    extract_column: Column | None = None

    def extract_batch(self, batch: list[Envelope]) -> list[Any]:
        """What each command of a batch adds, in order: `extract` over the batch."""
        if self.extract_column is not None:
            return self.extract_column(batch)
        return list(map(self.extract, batch))


def _add(a: Any, b: Any) -> Any:
    return a if b is None else a + b


def _add_member(members: set[Any], member: Any) -> set[Any]:
    if member is not None:
        members.add(member)
    return members


def _union(a: set[Any], b: set[Any]) -> set[Any]:
    return a | b


def _add_weights(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    merged = dict(a)
    for k, w in b.items():
        merged[k] = merged.get(k, 0.0) + w
    return merged


def _number(path: str) -> Callable[[Envelope], float | None]:
    get = getter(path)

    def value(e: Envelope) -> float | None:
        v = get(e)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    return value


def _numbers(path: str) -> Column:
    """`_number` over a batch."""
    values = column(path)

    def numbers(batch: list[Envelope]) -> list[float | None]:
        return [
            float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None
            for v in values(batch)
        ]

    return numbers


def _ones(batch: list[Envelope]) -> list[int]:
    return [1] * len(batch)


def _q(name: str) -> str:
    return f"`{name}`"


def build(name: str, spec: AggSpec) -> Aggregation:
    """An aggregation from its spec: `count`, `{sum: path}`, `{min: path}`, `{max: path}`,
    `{avg: path}`, `{count_distinct: path}`, `{approx_count_distinct: path}`, `{top_k: …}`.
    The name becomes a column, so it is checked here, when the spec is parsed."""
    if not is_ident(name):
        raise ValueError(
            f"aggregate name {name!r} cannot be a column: use letters, digits and '_', starting "
            f"with a letter or '_' (at most 128)"
        )
    if spec == "count":
        return Aggregation(
            name, ((name, "UInt64"),), lambda: 0, lambda e: 1, _add, lambda p: (p,),
            (f"sum({_q(name)}) AS {_q(name)}",), _add, _ones,
        )  # fmt: skip
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ValueError(
            f"{name}: expected `count` or one of {{sum|min|max|avg|count_distinct|"
            f"approx_count_distinct|top_k: …}}, got {spec!r}"
        )
    ((kind, arg),) = spec.items()
    if kind in ("sum", "min", "max", "avg"):
        if not isinstance(arg, str):
            raise ValueError(f"{name}.{kind}: expected a field path, got {arg!r}")
        return _numeric(name, kind, _number(arg), _numbers(arg))
    if kind == "count_distinct":
        get = getter(arg) if isinstance(arg, str) else None
        if get is None:
            raise ValueError(f"{name}.count_distinct: expected a field path, got {arg!r}")
        return Aggregation(
            name, ((name, "Array(String)"),), set,
            lambda e: None if (v := get(e)) is MISSING else str(v), _add_member,
            lambda p: (sorted(p),),
            (f"uniqExactArray({_q(name)}) AS {_q(name)}",), _union,
        )  # fmt: skip
    if kind == "approx_count_distinct":
        get = getter(arg) if isinstance(arg, str) else None
        if get is None:
            raise ValueError(f"{name}.approx_count_distinct: expected a field path, got {arg!r}")
        return _kmv(name, get)
    if kind == "top_k":
        return _top_k(name, msgspec.convert(arg, TopK))
    raise ValueError(f"{name}: unknown aggregation {kind!r}")


def _numeric(
    name: str, kind: str, value: Callable[[Envelope], float | None], values: Column
) -> Aggregation:
    q = _q(name)
    if kind == "sum":
        return Aggregation(
            name, ((name, "Float64"),), float, value, _add, lambda p: (p,), (f"sum({q}) AS {q}",),
            _add, values,
        )  # fmt: skip
    if kind in ("min", "max"):
        better = min if kind == "min" else max

        def extreme(a: float | None, b: float | None) -> float | None:
            return b if a is None else a if b is None else better(a, b)

        return Aggregation(
            name, ((name, "Nullable(Float64)"),), lambda: None, value, extreme, lambda p: (p,),
            (f"{kind}({q}) AS {q}",), extreme, values,
        )  # fmt: skip

    def add_avg(p: tuple[float, int], v: float | None) -> tuple[float, int]:
        return p if v is None else (p[0] + v, p[1] + 1)

    s, c = f"{name}__sum", f"{name}__count"
    return Aggregation(
        name, ((s, "Float64"), (c, "UInt64")), lambda: (0.0, 0), value, add_avg, lambda p: p,
        (f"sum({_q(s)}) / nullIf(sum({_q(c)}), 0) AS {q}",),
        lambda a, b: (a[0] + b[0], a[1] + b[1]), values,
    )  # fmt: skip


def stable_hash(value: Any) -> int:
    """A 64-bit hash that is the same in every process (Python's `hash` is salted)."""
    digest = hashlib.blake2b(str(value).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _kmv(name: str, get: Callable[[Envelope], Any]) -> Aggregation:
    def extract(e: Envelope) -> int | None:
        v = get(e)
        return None if v is MISSING else stable_hash(v)

    def add(p: set[int], h: int | None) -> set[int]:
        if h is not None:
            p.add(h)
            if len(p) > 2 * KMV_K:  # keep the sketch small as it grows
                p.intersection_update(sorted(p)[:KMV_K])
        return p

    q = _q(name)
    hashes = f"arraySort(groupUniqArrayArray({q}))"
    estimate = (
        f"if(length({hashes}) < {KMV_K}, length({hashes}), "
        f"toUInt64(({KMV_K} - 1) / (arrayElement({hashes}, {KMV_K}) / 18446744073709551616.0)))"
    )

    def trim(hashes: set[int]) -> set[int]:
        return set(sorted(hashes)[:KMV_K]) if len(hashes) > KMV_K else hashes

    return Aggregation(
        name, ((name, "Array(UInt64)"),), set, extract, add, lambda p: (sorted(p)[:KMV_K],),
        (f"{estimate} AS {q}",), lambda a, b: trim(a | b),
    )  # fmt: skip


def kmv_estimate(hashes: set[int] | list[int]) -> int:
    """What the view computes from a sketch's hashes (for tests and for the oracle)."""
    smallest = sorted(set(hashes))[:KMV_K]
    if len(smallest) < KMV_K:
        return len(smallest)
    return int((KMV_K - 1) / (smallest[KMV_K - 1] / 2**64))


def _top_k(name: str, spec: TopK) -> Aggregation:
    if bool(spec.field) == bool(spec.items):
        raise ValueError(f"{name}.top_k: give either `field` or `items` (with `key`)")
    if spec.items and not spec.key:
        raise ValueError(f"{name}.top_k: `items` needs the `key` of each item")
    if spec.field:
        key_of = getter(spec.field)
        weight_of = _number(spec.weight) if spec.weight else None

        def pairs(e: Envelope) -> list[tuple[Any, float]]:
            k = key_of(e)
            if k is MISSING:
                return []
            w = weight_of(e) if weight_of else 1.0
            return [] if w is None else [(k, w)]

    else:
        items_of = getter(spec.items)

        def pairs(e: Envelope) -> list[tuple[Any, float]]:
            items = items_of(e)
            if not isinstance(items, list):
                return []
            found = []
            for item in items:
                if isinstance(item, dict) and spec.key in item:
                    w = item.get(spec.weight, 1.0) if spec.weight else 1.0
                    if isinstance(w, int | float):
                        found.append((item[spec.key], float(w)))
            return found

    def extract(e: Envelope) -> list[tuple[str, float]]:
        return [(str(k), w) for k, w in pairs(e)]

    def add(p: dict[str, float], weights: list[tuple[str, float]]) -> dict[str, float]:
        for key, w in weights:
            p[key] = p.get(key, 0.0) + w
        return p

    q = _q(name)
    merged = f"sumMap({q})"
    top = (
        f"arraySlice(arraySort(x -> (-x.2, x.1), arrayZip(mapKeys({merged}), "
        f"mapValues({merged}))), 1, {spec.k}) AS {q}"
    )
    return Aggregation(
        name, ((name, "Map(String, Float64)"),), dict, extract, add, lambda p: (dict(p),), (top,),
        _add_weights,
    )  # fmt: skip
