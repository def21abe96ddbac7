"""Typed parameters described for people: what `cqrs filters` and `cqrs sinks` print.

Filters and sink kinds declare their parameters as msgspec Structs. The listing is generated
from those types as msgspec itself sees them (`msgspec.inspect`: the name a spec writes, the
type with its `msgspec.Meta` bounds, the default, the fields of a nested Struct) and from the
`#:` comment above each field, so it cannot drift from what the spec parser accepts.
"""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import dataclass
from typing import cast

import msgspec
import msgspec.inspect as mi

_FIELD = re.compile(r"\s+([A-Za-z_][A-Za-z0-9_]*)\s*:")
_COMMENT = re.compile(r"\s+#:\s?(.*)")
#: the constraints `msgspec.Meta` can put on a value, as a spec's author reads them
_BOUNDS = (
    ("ge", "≥"),
    ("gt", ">"),
    ("le", "≤"),
    ("lt", "<"),
    ("multiple_of", "multiple of"),
    ("min_length", "length ≥"),
    ("max_length", "length ≤"),
    ("pattern", "matching"),
)
_CONTAINERS = {
    mi.ListType: "list",
    mi.SetType: "set",
    mi.FrozenSetType: "frozenset",
    mi.VarTupleType: "tuple",
}


@dataclass(frozen=True)
class Param:
    """One parameter, by the name a spec gives it: `type` carries its bounds (`int ≥ 1`),
    `default` is its value as the spec would write it ("" when required), and `fields` are
    those of the Struct it is made of (a route's `Route`), so a nested model is described
    where it is used."""

    name: str
    type: str
    required: bool
    default: str
    doc: str
    fields: list[Param]


def describe_params(struct: type[msgspec.Struct]) -> list[Param]:
    """The fields of a parameter struct, in declaration order, with their docs."""
    return _fields(struct, frozenset())


def _fields(struct: type[msgspec.Struct], seen: frozenset[type]) -> list[Param]:
    info = cast(mi.StructType, mi.type_info(struct))
    docs = _field_docs(struct)
    seen = seen | {struct}
    params = []
    for f in info.fields:
        default = "" if f.required else _default(f)
        nested = [s for s in _structs(f.type) if s not in seen]
        fields = [p for s in nested for p in _fields(s, seen)]
        doc = docs.get(f.name, "")
        params.append(Param(f.encode_name, type_name(f.type), f.required, default, doc, fields))
    return params


def _default(field: mi.Field) -> str:
    value = field.default_factory() if field.default is msgspec.NODEFAULT else field.default
    if isinstance(value, str):
        return value
    try:
        return msgspec.json.encode(value).decode()
    except TypeError:  # a sentinel of the filter's own
        return repr(value)


def type_name(t: mi.Type) -> str:
    """`int ≥ 1`, `str | int`, `list[Route]`, `"dlq" | "update"`: a type as a spec's author
    reads it, with the bounds msgspec checks."""
    if isinstance(t, mi.Metadata):
        return type_name(t.type)
    if isinstance(t, mi.UnionType):
        return " | ".join(type_name(member) for member in t.types)
    if isinstance(t, mi.LiteralType):
        return " | ".join(json.dumps(v) for v in t.values)
    if isinstance(t, mi.StructType | mi.EnumType | mi.CustomType):
        name = t.cls.__name__
    elif isinstance(t, mi.DictType):
        name = f"dict[{type_name(t.key_type)}, {type_name(t.value_type)}]"
    elif isinstance(t, tuple(_CONTAINERS)):
        name = f"{_CONTAINERS[type(t)]}[{type_name(t.item_type)}]"
    elif isinstance(t, mi.TupleType):
        name = f"tuple[{', '.join(type_name(item) for item in t.item_types)}]"
    else:
        # int, str, bool, float, any, datetime, uuid, …: msgspec's own name; None as YAML says it
        name = "null" if isinstance(t, mi.NoneType) else type(t).__name__[:-4].lower()
    bounds = [
        f"{word} {getattr(t, key)}" for key, word in _BOUNDS if getattr(t, key, None) is not None
    ]
    return " ".join([name, *bounds])


def _structs(t: mi.Type) -> list[type[msgspec.Struct]]:
    """The Structs a type is made of, each once: `Route` of `list[Route]`, of `Route | None`."""
    if isinstance(t, mi.StructType):
        return [t.cls]
    found: list[type[msgspec.Struct]] = []
    inner: list[mi.Type] = []
    if isinstance(t, mi.Metadata):
        inner = [t.type]
    elif isinstance(t, mi.UnionType):
        inner = list(t.types)
    elif isinstance(t, mi.DictType):
        inner = [t.key_type, t.value_type]
    elif isinstance(t, mi.TupleType):
        inner = list(t.item_types)
    elif isinstance(t, tuple(_CONTAINERS)):
        inner = [t.item_type]
    for member in inner:
        found.extend(s for s in _structs(member) if s not in found)
    return found


def _field_docs(struct: type) -> dict[str, str]:
    """The `#:` comment lines above each field, through the struct's bases."""
    docs: dict[str, str] = {}
    for cls in reversed(struct.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, msgspec.Struct)):
            continue
        try:
            lines = inspect.getsource(cls).splitlines()
        except (OSError, TypeError):
            continue
        pending: list[str] = []
        for line in lines[1:]:
            comment = _COMMENT.fullmatch(line)
            if comment:
                pending.append(comment.group(1).strip())
                continue
            field = _FIELD.match(line)
            if field and pending:
                docs[field.group(1)] = " ".join(pending)
            pending = []
    return docs
