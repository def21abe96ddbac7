"""`cqrs filters` and `cqrs sinks` show what their registries describe: every registered filter
and sink kind, each parameter with its type (bounds included), default and doc, and a nested
model's fields indented under the parameter made of it, as text and as JSON."""

import dataclasses
import json

import pytest

import operators.builtin  # noqa: F401 - registers the built-in filters
from cli.catalog import filters, sinks
from operators.registry import FILTERS
from sinks.output import SINKS


def lines_of(params, indent="    "):
    """The lines the text listing must hold for `params`, nested ones deeper."""
    for p in params:
        default = "required" if p.required else f"default {p.default}"
        yield f"{indent}{p.name}: {p.type}  ({default})"
        yield from lines_of(p.fields, indent + "    ")


@pytest.mark.parametrize(("command", "registry"), [(filters, FILTERS), (sinks, SINKS)])
def test_every_registered_kind_is_listed_with_its_parameters(capsys, command, registry):
    command.main(["--json"], standalone_mode=False)
    listed = json.loads(capsys.readouterr().out)
    described = registry.describe()
    assert [k["name"] for k in listed] == registry.names() == [k.name for k in described]
    assert [k["params"] for k in listed] == [
        [dataclasses.asdict(p) for p in k.params] for k in described
    ]

    command.main([], standalone_mode=False)
    lines = capsys.readouterr().out.splitlines()
    for kind in described:
        assert f"{kind.name}  {kind.summary}" in lines
        for expected in lines_of(kind.params):
            assert any(line.startswith(expected) for line in lines), (kind.name, expected)


def test_bounds_and_nested_models_reach_both_listings(capsys):
    filters.main([], standalone_mode=False)
    text = capsys.readouterr().out
    assert "    max_keys: int ≥ 1 ≤ 10000000  (default 100000)" in text
    assert "    rules: list[UpcastRule]  (required)\n        type: str  (required)\n" in text
    filters.main(["--json"], standalone_mode=False)
    (upcast,) = [k for k in json.loads(capsys.readouterr().out) if k["name"] == "upcast"]
    (rules,) = upcast["params"]
    assert {f["name"]: f["type"] for f in rules["fields"]}["from"] == "int ≥ 1"
