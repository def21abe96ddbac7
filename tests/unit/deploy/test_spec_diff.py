"""What a deployment history says changed between two spec versions: every kind of change,
named by the step id a user reads in the spec."""

from dataflows.spec import PipelineSpec, parse_pipeline
from deploy.spec_diff import diff_specs

BASE = """\
name: shop
version: 1
modules: [examples.orders.order_state]
filters:
  - validate: {schemas: examples.orders.schemas:SCHEMAS}
  - dedupe: {ttl: 1h}
  - order_state
projections:
  - name: orders
    steps: [order_rows]
  - name: per_minute
    steps:
      - select: {where: {type: order.paid}}
      - tumbling: {size: 1m, aggregates: {n: count}}
"""
PLACED = """\
  - name: placed
    steps:
      - select: {where: {type: order.placed}}
      - tumbling: {size: 1m, aggregates: {n: count}}
"""


def spec(text: str) -> PipelineSpec:
    return parse_pipeline(text, "spec.yaml").spec


def diff(new_text: str, old_text: str = BASE) -> list[str]:
    return diff_specs(spec(old_text), spec(new_text))


def test_the_same_spec_has_no_changes():
    assert diff(BASE) == []
    assert diff(BASE.replace("version: 1", "version: 2")) == []  # the version is not a change


def test_filters_added_removed_and_changed():
    assert diff(
        BASE.replace("  - order_state\n", "  - order_state\n  - set: {fields: {a: 1}}\n")
    ) == ["filter added: set"]
    assert diff(BASE.replace("  - dedupe: {ttl: 1h}\n", "")) == ["filter removed: dedupe"]
    assert diff(BASE.replace("ttl: 1h", "ttl: 2h")) == ["filter changed: dedupe"]
    # a bare name and the same filter with explicit empty params are the same step
    assert diff(BASE.replace("  - order_state\n", "  - order_state: {}\n")) == []


def test_a_step_id_names_the_filter_in_the_diff():
    with_id = BASE.replace(
        "  - order_state\n", "  - order_state\n  - {set: {fields: {a: 1}}, id: tag}\n"
    )
    assert diff(with_id) == ["filter added: tag"]
    assert diff(with_id.replace("a: 1", "a: 2"), with_id) == ["filter changed: tag"]
    # the same filter under a new id: one removed, one added
    renamed = with_id.replace("id: tag", "id: label")
    assert diff(renamed, with_id) == ["filter added: label", "filter removed: tag"]
    # another filter under the same id is a change of that step
    assert diff(
        with_id.replace("{set: {fields: {a: 1}}", "{map: {fields: {a: data.x}}"), with_id
    ) == ["filter changed: tag"]


def test_projections_added_and_removed():
    more = BASE + PLACED
    assert diff(more) == ["projection added: placed"]
    assert diff(BASE, more) == ["projection removed: placed"]


def test_steps_within_a_projection():
    assert diff(BASE.replace("size: 1m", "size: 5m")) == ["per_minute step changed: tumbling"]
    assert diff(BASE.replace("      - select: {where: {type: order.paid}}\n", "")) == [
        "per_minute step removed: select"
    ]
    assert diff(
        BASE.replace(
            "      - select: {where: {type: order.paid}}\n",
            "      - select: {where: {type: order.paid}}\n      - set: {fields: {a: 1}}\n",
        )
    ) == ["per_minute step added: set"]


def test_source_changes():
    assert diff(BASE + "source: {start: latest}\n") == ["source changed"]
    assert diff(BASE + "source: {topic: other}\n") == ["source changed"]
    assert diff(BASE + "source: {start: earliest}\n") == []  # the default, written out


def test_changes_come_in_a_stable_order():
    new = (
        BASE.replace("ttl: 1h", "ttl: 2h")
        .replace("  - validate: {schemas: examples.orders.schemas:SCHEMAS}\n", "")
        .replace("size: 1m", "size: 2m")
        + PLACED
        + "source: {start: latest}\n"
    )
    assert diff(new) == [
        "filter removed: validate",
        "filter changed: dedupe",
        "projection added: placed",
        "per_minute step changed: tumbling",
        "source changed",
    ]
