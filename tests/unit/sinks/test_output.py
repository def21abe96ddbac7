"""Sink kinds as types: registered by name, listed with their params, chosen by the projector."""

import pytest

from core.errors import SpecError
from core.schema import Table
from dataflows.spec import parse_pipeline
from operators.base import Stateless
from operators.registry import Registry
from sinks.builtin import list_sinks
from sinks.clickhouse import TableOutput
from sinks.output import SinkRegistry
from sinks.topic import TopicOutput


def test_the_listing_has_every_sink_kind_with_its_params():
    kinds = {k.name: k for k in list_sinks()}
    assert sorted(kinds) == ["dlq", "table", "topic"]
    table = {p.name: p for p in kinds["table"].params}
    assert (table["max_rows"].type, table["max_rows"].default) == ("int ≥ 1 ≤ 1000000", "50000")
    assert table["max_delay_ms"].doc.startswith("the longest a row waits")
    assert [p.name for p in kinds["topic"].params] == ["topic"]
    assert kinds["topic"].params[0].required
    assert kinds["dlq"].params == [] and "every reject" in kinds["dlq"].summary


def test_a_kind_registers_once():
    registry = SinkRegistry()

    class Nowhere(TopicOutput):
        kind = "nowhere"

    registry.register(Nowhere)
    assert registry.get("nowhere") is Nowhere
    with pytest.raises(ValueError, match="already registered"):
        registry.register(Nowhere)


SPEC = """
name: shop
version: 1
projections:
  - name: rows
    steps: [rows]
  - name: out
    steps: [forward]
    topic: shop_out
"""


def test_the_projector_chooses_the_output_kind():
    pipeline = parse_pipeline(SPEC.replace("[rows]", "[tumbling: {aggregates: {n: count}}]"), "s")
    rows, out = pipeline.projections
    assert isinstance(rows.output, TableOutput) and rows.output.table.name == "rows"
    assert isinstance(out.output, TopicOutput) and out.output.topic == "shop_out"
    assert pipeline.tables == (rows.output.table,)
    assert out.output.tables == ()
    assert rows.output.describe("shop_v1") == "table shop_v1.rows"
    assert out.output.describe("shop_v1") == "topic shop_out"


def test_a_projector_of_an_unregistered_kind_is_refused():
    registry = Registry()

    @registry.register("rows")
    class Rows(Stateless):
        writes = "nowhere"

        def __init__(self, step_id, params):
            self.step_id = step_id
            self.table = Table("rows", (("k", "String"),), ("k",))

        def apply(self, envelope):
            return envelope

    spec = SPEC.split("  - name: out")[0]
    with pytest.raises(SpecError, match=r"steps\[0\]: 'rows/rows' writes a sink of kind 'nowhere'"):
        parse_pipeline(spec, "s", registry)
