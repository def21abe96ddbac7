"""Typed parameters described for people: what `cqrs filters` and `cqrs sinks` print.

Filters and sink kinds declare their parameters as msgspec Structs. The listing is generated
from those types (name, type, default) and from the `#:` comment above each field, so it cannot
drift from what the spec parser accepts.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any

import msgspec

_FIELD = re.compile(r"\s+([A-Za-z_][A-Za-z0-9_]*)\s*:")
_COMMENT = re.compile(r"\s+#:\s?(.*)")


@dataclass(frozen=True)
class Param:
    """One parameter: `default` is its value as the spec would write it ("" when required)."""

    name: str
    type: str
    required: bool
    default: str
    doc: str


def describe_params(struct: type[msgspec.Struct]) -> list[Param]:
    """The fields of a parameter struct, in declaration order, with their docs."""
    docs = _field_docs(struct)
    params = []
    for f in msgspec.structs.fields(struct):
        default = "" if f.required else _default(f)
        params.append(Param(f.name, _type_name(f.type), f.required, default, docs.get(f.name, "")))
    return params


def _default(field: msgspec.structs.FieldInfo) -> str:
    value = field.default_factory() if field.default is msgspec.NODEFAULT else field.default
    if isinstance(value, str):
        return value
    try:
        return msgspec.json.encode(value).decode()
    except TypeError:  # a sentinel of the filter's own
        return repr(value)


def _type_name(annotation: Any) -> str:
    """`int`, `str | int`, `dict[str, str]`: the annotation without `Annotated` constraints."""
    if isinstance(annotation, type) and not getattr(annotation, "__args__", None):
        return annotation.__name__
    text = repr(annotation)
    text = re.sub(r"typing\.Annotated\[(.*?), msgspec\.Meta\(.*?\)\]", r"\1", text)
    return re.sub(r"\b(typing|builtins|[a-z_]+(\.[a-z_]+)*)\.", "", text)


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
