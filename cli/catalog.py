"""What a spec may name: `cqrs filters` lists the registered filters, each with its
parameters as its typed parameter model declares them (names as a spec writes them, types,
bounds, defaults, the `#:` comment above a field), so the listing cannot drift from what the
spec parser accepts."""

from __future__ import annotations

import contextlib
import inspect
import json
import re
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import click
import msgspec
from rich.text import Text

from cli.ui import out
from operators.registry import FILTERS, Registration

_COMMENT = re.compile(r"\s*#:\s?(.*)")
_FIELD = re.compile(r"\s*(\w+)\s*:")
_BOUNDS = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<", "min_length": "length ≥",
           "max_length": "length ≤", "pattern": "matching"}  # fmt: skip


@click.command()
@click.option("--json", "as_json", is_flag=True, help="one JSON document")
def filters(as_json: bool) -> None:
    """The registered filters with their parameters and what they do."""
    listed = [describe(FILTERS.get(name)) for name in FILTERS.names()]
    if as_json:
        click.echo(msgspec.json.encode(listed).decode())
        return
    for i, doc in enumerate(listed):
        if i:
            out.print()
        out.print(Text.assemble((doc["name"], "bold"), f"  {doc['summary']}"))
        _show_params(doc["params"], "    ")
        for model in doc["types"]:
            out.print(f"    {model['name']}:", highlight=False)
            _show_params(model["params"], "        ")


def _show_params(shown: list[dict[str, Any]], indent: str) -> None:
    if not shown:
        out.print(f"{indent}(no parameters)", highlight=False)
    for param in shown:
        if param["required"]:
            default = "required"
        elif "default" in param:
            default = f"default {msgspec.json.encode(param['default']).decode()}"
        else:
            default = "optional"
        doc = f"  {param['doc']}" if param["doc"] else ""
        out.print(Text(f"{indent}{param['name']}: {param['type']}  ({default}){doc}"))


def describe(registration: Registration) -> dict[str, Any]:
    """A filter as a document: its name, what it does (the first paragraph of its docstring,
    then the rest), and its parameters."""
    summary, _, more = (inspect.getdoc(registration.factory) or "").partition("\n\n")
    return {
        "name": registration.name,
        "summary": " ".join(summary.split()),
        "doc": more.strip(),
        "params": params(registration.params),
        "types": [{"name": t.__name__, "params": params(t)} for t in nested(registration.params)],
    }


def params(model: type[msgspec.Struct]) -> list[dict[str, Any]]:
    """Each field of a parameter model, by the name a spec gives it; a field left unset unless
    given (a sentinel default) has no `default`."""
    docs = _field_docs(model)
    shown = []
    for field in msgspec.structs.fields(model):
        param = {"name": field.encode_name, "type": type_name(field.type),
                 "required": field.required, "doc": docs.get(field.name, "")}  # fmt: skip
        if not field.required:
            default = (
                field.default_factory()
                if field.default_factory is not msgspec.NODEFAULT
                else field.default
            )
            with contextlib.suppress(TypeError):  # a sentinel: nothing a spec could write
                param["default"] = msgspec.to_builtins(default)
        shown.append(param)
    return shown


def nested(model: type[msgspec.Struct]) -> list[type[msgspec.Struct]]:
    """The models a parameter model's fields are made of (a route's `Route`), each once."""
    found: list[type[msgspec.Struct]] = []

    def visit(hint: Any) -> None:
        if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
            if hint not in found:
                found.append(hint)
                for field in msgspec.structs.fields(hint):
                    visit(field.type)
            return
        for arg in get_args(hint):
            visit(arg)

    for field in msgspec.structs.fields(model):
        visit(field.type)
    return found


def type_name(hint: Any) -> str:
    """A type as a spec's author reads it: `str | int`, `list[Route]`, `int ≥ 1`."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Annotated:
        bounds = [
            f"{_BOUNDS[k]} {v}"
            for meta in hint.__metadata__
            if isinstance(meta, msgspec.Meta)
            for k, v in _meta(meta).items()
        ]
        return " ".join([type_name(args[0]), *bounds])
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin is not None:
        return f"{origin.__name__}[{', '.join(type_name(a) for a in args)}]"
    if hint is type(None):
        return "null"
    if hint is Any:
        return "any"
    return getattr(hint, "__name__", str(hint))


def _meta(meta: msgspec.Meta) -> dict[str, Any]:
    return {k: getattr(meta, k) for k in _BOUNDS if getattr(meta, k, None) is not None}


def _field_docs(model: type) -> dict[str, str]:
    """The `#:` comment above each field of the model and of the models it extends."""
    docs: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not issubclass(cls, msgspec.Struct) or cls is msgspec.Struct:
            continue
        try:
            lines = inspect.getsource(cls).splitlines()
        except (OSError, TypeError):  # no source (a frozen build): no docs, still the types
            continue
        comment: list[str] = []
        for line in lines[1:]:
            if found := _COMMENT.fullmatch(line):
                comment.append(found.group(1).strip())
                continue
            if comment and (field := _FIELD.match(line)):
                docs[field.group(1)] = " ".join(comment)
            comment = []
    return docs


COMMANDS = (filters,)
