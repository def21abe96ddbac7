"""Parameters are described as msgspec checks them: the name a spec writes, the type with its
`msgspec.Meta` bounds, and the fields of a nested model under the parameter made of it."""

from __future__ import annotations

from typing import Annotated

import msgspec

import operators.builtin  # noqa: F401 - registers the built-in filters
import sinks.builtin  # noqa: F401 - registers the built-in sink kinds
from core.params import Param, describe_params
from operators.registry import FILTERS
from sinks.output import SINKS


def params_of(kinds, name: str) -> dict[str, Param]:
    (kind,) = [k for k in kinds if k.name == name]
    return {p.name: p for p in kind.params}


def test_registered_filters_show_their_bounds_by_the_names_a_spec_writes():
    filters = FILTERS.describe()
    assert params_of(filters, "dedupe")["max_keys"].type == "int ≥ 1 ≤ 10000000"
    assert params_of(filters, "fx")["rates"].type == "dict[str, float > 0]"
    aggregates = params_of(filters, "tumbling")["aggregates"]
    assert aggregates.type == "dict[str, str | dict[str, any]] length ≥ 1"
    assert aggregates.fields == []  # no model inside: nothing nested
    assert params_of(filters, "tumbling")["late"].type == '"dlq" | "update"'
    table = params_of(SINKS.describe(), "table")
    assert table["max_delay_ms"].type == "int ≥ 10 ≤ 60000"
    assert table["max_delay_ms"].default == "250"


def test_a_parameter_made_of_a_model_carries_the_models_fields():
    filters = FILTERS.describe()
    routes = params_of(filters, "route")["routes"]
    assert (routes.type, routes.required) == ("list[Route]", True)
    assert [(f.name, f.type, f.required) for f in routes.fields] == [
        ("when", "dict[str, any]", True),
        ("to", "list[str]", True),
    ]
    rules = params_of(filters, "upcast")["rules"]
    nested = {f.name: f for f in rules.fields}
    # renamed fields (`from_v` in Python) are shown as a spec writes them, with their bounds
    assert (nested["from"].type, nested["to"].type) == ("int ≥ 1", "int ≥ 2")
    assert nested["rename"].default == "{}" and not nested["rename"].required


class Leaf(msgspec.Struct):
    #: lower-case letters only
    word: Annotated[str, msgspec.Meta(pattern="^[a-z]+$", max_length=20)]


class Tree(msgspec.Struct):
    label: Annotated[str, msgspec.Meta(min_length=1)]
    leaves: dict[str, Leaf] = {}
    children: list[Tree] = []  # the model itself: described once, not forever
    parent: Tree | None = None


def test_patterns_docs_and_recursive_models():
    (label, leaves, children, parent) = describe_params(Tree)
    assert label.type == "str length ≥ 1"
    assert leaves.type == "dict[str, Leaf]"
    assert leaves.fields == [
        Param("word", "str length ≤ 20 matching ^[a-z]+$", True, "", "lower-case letters only", [])
    ]
    assert (children.type, children.fields) == ("list[Tree]", [])
    assert (parent.type, parent.default, parent.fields) == ("Tree | null", "null", [])
    msgspec.json.encode(describe_params(Tree))  # --json can always write it
