from pathlib import Path

import pytest

from commands.errors import SpecError
from dataflows.spec import load_pipeline, parse_pipeline
from operators.order_state import OrderStateProjector
from operators.validate import Validate

REPO = Path(__file__).resolve().parents[3]

MINIMAL = """
name: shop
version: 2
filters: [validate]
projections:
  - name: orders
    steps: [order_state]
"""


def test_the_shipped_orders_spec_resolves():
    pipeline = load_pipeline(REPO / "dataflows" / "orders.yaml")
    assert pipeline.deployment == "orders_v1"
    assert [type(f) for f in pipeline.filters] == [Validate]
    (projection,) = pipeline.projections
    assert projection.name == "orders"
    assert isinstance(projection.steps[-1], OrderStateProjector)
    assert projection.table.name == "orders"
    assert projection.table.version == "version"
    assert projection.table.order_by == ("order_id",)


def test_minimal_spec_takes_defaults():
    pipeline = parse_pipeline(MINIMAL, "shop.yaml")
    assert pipeline.deployment == "shop_v2"
    assert pipeline.spec.source.start == "earliest"
    assert pipeline.projections[0].sink.max_rows == 50_000


def test_step_ids_default_to_the_filter_name_and_can_be_given():
    text = MINIMAL.replace("filters: [validate]", "filters: [{validate: {}, id: check}]")
    assert parse_pipeline(text, "x.yaml").filters[0].step_id == "check"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: shop\nversion: 1\n", "x.yaml: Object missing required field `projections`"),
        (MINIMAL.replace("name: shop", "name: Shop"), "x.yaml: at name: Expected `str` matching"),
        (MINIMAL.replace("version: 2", "version: two"), "at version: Expected `int`, got `str`"),
        (MINIMAL.replace("version: 2", "version: 2\ncolour: red"), "unknown field `colour`"),
        (MINIMAL.replace("[validate]", "[validat]"), "filters[0]: unknown filter 'validat'"),
        (
            MINIMAL.replace("[validate]", "[{validate: {schemas: 3}}]"),
            "filters[0].validate: at schemas: Expected `str`, got `int`",
        ),
        (
            MINIMAL.replace("[validate]", "[{validate: {}, check: {}}]"),
            "filters[0]: expected one filter name",
        ),
        (
            MINIMAL.replace("[validate]", "[order_state]"),
            "filters[0]: 'order_state' writes a table",
        ),
        (MINIMAL.replace("[order_state]", "[{validate: {}, id: v2}]"), "must write a table"),
        (
            MINIMAL.replace("[validate]", "[{validate: {}, id: order_state}]"),
            "step id 'order_state' is used twice",
        ),
        ("name: [", "x.yaml: not valid YAML"),
        (MINIMAL + "modules: [no_such_module_here]\n", "modules[0]: cannot import"),
    ],
)
def test_bad_specs_are_refused_with_the_place(text, message):
    with pytest.raises(SpecError) as caught:
        parse_pipeline(text, "x.yaml")
    assert message in str(caught.value)


def test_missing_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match="cannot read the spec"):
        load_pipeline(tmp_path / "nope.yaml")
