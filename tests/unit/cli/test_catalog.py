"""`cqrs filters` is generated from the registered filters' typed parameter models: a new
filter or field shows up with its type, its bounds, its default and its `#:` comment."""

from typing import Annotated, Any, Literal

import msgspec

import operators.builtin  # noqa: F401 - registers the built-in filters
from cli.catalog import describe, params, type_name
from operators.registry import FILTERS, Registration


class Rule(msgspec.Struct, frozen=True):
    #: which commands the rule applies to
    when: dict[str, Any]
    to: list[str] = []


class Params(msgspec.Struct, frozen=True):
    #: how many, at most;
    #: never zero
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)]
    rules: list[Rule] = []
    mode: Literal["hash", "drop"] = "hash"
    tag: str | None = None
    size: str | int = msgspec.field(default="1m", name="window")


def made(step_id, params):
    """Does a thing.

    Then more about why."""


def test_a_filter_is_described_by_its_model_and_docstring():
    doc = describe(Registration("mine", Params, made, "ignored"))
    assert (doc["name"], doc["summary"], doc["doc"]) == (
        "mine", "Does a thing.", "Then more about why."
    )  # fmt: skip
    assert doc["params"] == [
        {"name": "limit", "type": "int ≥ 1 ≤ 100", "required": True,
         "doc": "how many, at most; never zero"},
        {"name": "rules", "type": "list[Rule]", "required": False, "doc": "", "default": []},
        {"name": "mode", "type": '"hash" | "drop"', "required": False, "doc": "",
         "default": "hash"},
        {"name": "tag", "type": "str | null", "required": False, "doc": "", "default": None},
        {"name": "window", "type": "str | int", "required": False, "doc": "", "default": "1m"},
    ]  # fmt: skip
    assert doc["types"] == [{"name": "Rule", "params": params(Rule)}]
    assert params(Rule)[0]["doc"] == "which commands the rule applies to"


def test_every_registered_filter_is_listed_with_each_field_of_its_model():
    for name in FILTERS.names():
        registration = FILTERS.get(name)
        doc = describe(registration)
        assert doc["summary"], name
        fields = msgspec.structs.fields(registration.params)
        assert [p["name"] for p in doc["params"]] == [f.encode_name for f in fields]
        msgspec.json.encode(doc)  # --json can always write it
    windows = {p["name"]: p for p in describe(FILTERS.get("tumbling"))["params"]}
    assert windows["late"]["type"] == '"dlq" | "update"'
    assert (
        windows["group_by"]["doc"] == "output column -> field path; empty: one group for everything"
    )
    mapped = {p["name"]: p for p in describe(FILTERS.get("map"))["params"]}
    assert "default" not in mapped["default"]  # unset unless given: no default to show


def test_type_names_read_as_a_spec_is_written():
    assert type_name(dict[str, list[int]]) == "dict[str, list[int]]"
    assert type_name(Annotated[str, msgspec.Meta(min_length=1)]) == "str length ≥ 1"
    assert type_name(Any) == "any"
