"""What a spec may name: `cqrs filters` and `cqrs sinks` list the registered filters and sink
kinds with their parameters, as their registries describe them from the typed parameter
models (`core.params`: types with their bounds, nested models' fields), so the listing cannot
drift from what the spec parser accepts."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING

import click
from rich.text import Text

from cli.ui import out
from core.params import Param

if TYPE_CHECKING:
    from operators.registry import FilterDoc
    from sinks.output import SinkKind


@click.command()
@click.option("--json", "as_json", is_flag=True, help="one JSON document")
def filters(as_json: bool) -> None:
    """The registered filters, with their parameters and what they do."""
    from operators.builtin import list_filters

    _show(list_filters(), as_json)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="one JSON document")
def sinks(as_json: bool) -> None:
    """The sink kinds a projection may write to, with their parameters."""
    from sinks.builtin import list_sinks

    _show(list_sinks(), as_json)


def _show(kinds: list[FilterDoc] | list[SinkKind], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(kind) for kind in kinds]))
        return
    for i, kind in enumerate(kinds):
        if i:
            out.print()
        out.print(Text.assemble((kind.name, "bold"), f"  {kind.summary}"))
        if not kind.params:
            out.print(Text("    (no parameters)"))
        _show_params(kind.params, "    ")


def _show_params(params: list[Param], indent: str) -> None:
    """One line a parameter; a nested model's fields indented under the one made of it."""
    for param in params:
        default = "required" if param.required else f"default {param.default}"
        doc = f"  {param.doc}" if param.doc else ""
        out.print(Text(f"{indent}{param.name}: {param.type}  ({default}){doc}"))
        _show_params(param.fields, indent + "    ")


COMMANDS = (filters, sinks)
