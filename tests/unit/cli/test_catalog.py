"""`cqrs filters` and `cqrs sinks` show what their registries describe: every registered filter
and sink kind, each parameter with its type, default and doc, as text and as JSON."""

import json

import pytest

import operators.builtin  # noqa: F401 - registers the built-in filters
from cli.catalog import filters, sinks
from operators.registry import FILTERS
from sinks.output import SINKS


@pytest.mark.parametrize(("command", "registry"), [(filters, FILTERS), (sinks, SINKS)])
def test_every_registered_kind_is_listed_with_its_parameters(capsys, command, registry):
    command.main(["--json"], standalone_mode=False)
    listed = json.loads(capsys.readouterr().out)
    described = registry.describe()
    assert [k["name"] for k in listed] == registry.names() == [k.name for k in described]
    assert [[p["name"] for p in k["params"]] for k in listed] == [
        [p.name for p in k.params] for k in described
    ]

    command.main([], standalone_mode=False)
    lines = capsys.readouterr().out.splitlines()
    for kind in described:
        assert f"{kind.name}  {kind.summary}" in lines
        for p in kind.params:
            default = "required" if p.required else f"default {p.default}"
            assert any(line.startswith(f"    {p.name}: {p.type}  ({default})") for line in lines), (
                kind.name,
                p.name,
            )
