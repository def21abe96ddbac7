from pathlib import Path

import pytest

from core.errors import SpecError
from dataflows.spec import load_pipeline, parse_pipeline
from examples.orders.order_state import OrderRows, OrderStateFilter
from operators.dedupe import Dedupe
from operators.validate import Validate
from operators.windows import Sliding, Tumbling

REPO = Path(__file__).resolve().parents[3]

#: the orders example's schemas, which `validate` needs named
V = "{validate: {schemas: examples.orders.schemas:SCHEMAS}}"
MINIMAL = f"""
name: shop
version: 2
modules: [examples.orders.order_state]
filters: [{V}, order_state]
projections:
  - name: orders
    steps: [order_rows]
"""


def test_the_shipped_orders_specs_resolve():
    v1 = load_pipeline(REPO / "examples" / "orders" / "specs" / "orders.yaml")
    assert v1.deployment == "orders_v1"
    assert [type(f) for f in v1.filters] == [Validate, Dedupe, OrderStateFilter]
    orders, revenue = v1.projections
    assert orders.name == "orders"
    assert isinstance(orders.projector, OrderRows)
    assert orders.output.table.name == "orders"
    assert orders.output.table.version == "version"
    assert orders.output.table.order_by == ("order_id",)
    assert isinstance(revenue.projector, Tumbling)
    assert revenue.projector.step_id == "revenue_per_minute/tumbling"
    assert "paid_orders" in revenue.output.table.column_names

    v2 = load_pipeline(REPO / "examples" / "orders" / "specs" / "orders_v2.yaml")
    assert v2.deployment == "orders_v2"
    assert [f.step_id for f in v2.filters] == [
        "validate",
        "dedupe",
        "order_state",
        "drop_test_customers",
        "fx",
    ]
    assert [p.name for p in v2.projections] == ["orders", "revenue_per_minute", "top_skus_5m"]
    assert "revenue_usd" in v2.projections[1].output.table.column_names
    assert isinstance(v2.projections[2].projector, Sliding)


def test_minimal_spec_takes_defaults():
    pipeline = parse_pipeline(MINIMAL, "shop.yaml")
    assert pipeline.deployment == "shop_v2"
    assert pipeline.spec.source.start == "earliest"
    assert pipeline.projections[0].output.settings.max_rows == 50_000


def test_step_ids_default_to_the_filter_name_and_can_be_given():
    text = MINIMAL.replace(
        f"[{V},", "[{validate: {schemas: 'examples.orders.schemas:SCHEMAS'}, id: check},"
    )
    pipeline = parse_pipeline(text, "x.yaml")
    assert pipeline.filters[0].step_id == "check"
    assert pipeline.projections[0].projector.step_id == "orders/order_rows"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: shop\nversion: 1\n", "x.yaml: Object missing required field `projections`"),
        (MINIMAL.replace("name: shop", "name: Shop"), "x.yaml: at name: Expected `str` matching"),
        (MINIMAL.replace("version: 2", "version: two"), "at version: Expected `int`, got `str`"),
        (MINIMAL.replace("version: 2", "version: 2\ncolour: red"), "unknown field `colour`"),
        (MINIMAL.replace(f"[{V},", "[validat,"), "filters[0]: unknown filter 'validat'"),
        (
            MINIMAL.replace(f"[{V},", "[{validate: {schemas: 3}},"),
            "filters[0].validate: at schemas: Expected `str`, got `int`",
        ),
        (
            MINIMAL.replace(f"[{V},", "[{validate: {}, check: {}},"),
            "filters[0]: expected one filter name",
        ),
        (MINIMAL.replace(f"[{V},", "[order_rows,"), "filters[0]: 'order_rows' is a projector"),
        (MINIMAL.replace("[order_rows]", f"[{V}]"), "must write a table or a topic"),
        (
            MINIMAL.replace(
                f"[{V},",
                "[{validate: {schemas: 'examples.orders.schemas:SCHEMAS'}, id: order_state},",
            ),
            "step id 'order_state' is used twice",
        ),
        ("name: [", "x.yaml: not valid YAML"),
        (
            MINIMAL.replace("examples.orders.order_state]", "no_such_module_here]"),
            "modules[0]: cannot import",
        ),
        (
            MINIMAL.replace(f"[{V},", "[validate,"),
            "filters[0].validate: Object missing required field `schemas`; give `schemas: …`, "
            '"module:attribute" of the SchemaRegistry of your commands (the orders demo\'s: '
            "examples.orders.schemas:SCHEMAS)",
        ),
    ],
)
def test_bad_specs_are_refused_with_the_place(text, message):
    with pytest.raises(SpecError) as caught:
        parse_pipeline(text, "x.yaml")
    assert message in str(caught.value)


def test_missing_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match="cannot read the spec"):
        load_pipeline(tmp_path / "nope.yaml")


def test_a_spec_can_use_a_filter_from_a_user_module():
    text = MINIMAL.replace(f"[{V},", f"[{{tag_vip: {{value: gold}}}}, {V},").replace(
        "modules: [", "modules: [tests.fixtures.user_filters, "
    )
    pipeline = parse_pipeline(text, "x.yaml")
    assert type(pipeline.filters[0]).__name__ == "TagVip"
    with pytest.raises(
        SpecError, match=r"filters\[0\]\.tag_vip: Object missing required field `value`"
    ):
        parse_pipeline(text.replace("{tag_vip: {value: gold}}", "tag_vip"), "x.yaml")


def test_names_are_checked_whole_and_aggregates_when_parsed():
    import pytest

    from core.errors import SpecError
    from dataflows.spec import parse_pipeline

    spec = """name: {name}
version: 1
filters: [{{validate: {{schemas: examples.orders.schemas:SCHEMAS}}}}]
projections:
  - name: per_minute
    steps:
      - tumbling:
          size: 1m
          aggregates: {{{aggregate}: count}}
"""
    assert parse_pipeline(spec.format(name="ok", aggregate="n"), "s.yaml").name == "ok"
    with pytest.raises(SpecError, match="name"):
        parse_pipeline(spec.format(name='"ok\\n"', aggregate="n"), "s.yaml")
    with pytest.raises(SpecError, match="cannot be a column"):
        parse_pipeline(spec.format(name="ok", aggregate='"n` Int8, evil"'), "s.yaml")
