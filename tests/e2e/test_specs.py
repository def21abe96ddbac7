"""`cqrs validate` on broken specs: each refused with its own precise message."""

import json
import os
import subprocess

import pytest
import yaml

from tests.e2e.test_cli import CQRS

GOOD = """\
name: shop
version: 1
modules: [examples.orders.order_state]
filters:
  - validate: {schemas: examples.orders.schemas:SCHEMAS}
  - order_state
projections:
  - name: orders
    steps: [order_rows]
  - name: per_minute
    steps:
      - select: {where: {type: order.paid}}
      - tumbling:
          size: 1m
          aggregates: {n: count}
"""

NARROW = {**os.environ, "COLUMNS": "80"}

BROKEN = [
    # the orders example's filters plug in through `modules:`, as a user's own would
    (
        GOOD.replace("modules: [examples.orders.order_state]\n", ""),
        "filters[1]: unknown filter 'order_state'; registered filters: ",
    ),
    (
        GOOD.replace("- validate: {schemas: examples.orders.schemas:SCHEMAS}", "- validate"),
        "filters[0].validate: Object missing required field `schemas`; give `schemas: …`",
    ),
    (GOOD.replace("- validate", "- validat"), "filters[0]: unknown filter 'validat'"),
    (
        GOOD.replace("size: 1m", "size: 1x"),
        "projections[1].steps[1].tumbling: size: '1x' is not a duration",
    ),
    (GOOD.replace("version: 1", "version: 0"), "at version: Expected `int` >= 1"),
    (GOOD.replace("version: 1", "version: 1\ncolor: red"), "unknown field `color`"),
    (GOOD.replace("name: shop", "name: Shop!"), "at name: Expected `str` matching regex"),
    (
        GOOD.replace("steps: [order_rows]", "steps: [dedupe]"),
        "projections[0].steps[0]: the last step of a projection must write a table",
    ),
    (
        GOOD.replace("- order_state", "- {order_state: {}, id: validate}"),
        "filters[1]: step id 'validate' is used twice",
    ),
    (
        GOOD.replace("{where: {type: order.paid}}", "{where: {type: {like: paid}}}"),
        "projections[1].steps[0].select: type: unknown test 'like'",
    ),
    (
        GOOD.replace("aggregates: {n: count}", "aggregates: {n: {median: data.amount}}"),
        "projections[1].steps[1].tumbling: n: unknown aggregation 'median'",
    ),
    (
        GOOD.replace(
            "      - tumbling:\n          size: 1m",
            "      - sliding:\n          size: 5m\n          hop: 2m",
        ),
        "projections[1].steps[1].sliding: size (5m) must be a positive multiple of hop (2m)",
    ),
    (
        GOOD + "  - name: out\n    steps: [forward]\n",
        "projections[2].topic: 'out/forward' writes to a topic",
    ),
    (
        GOOD.replace(
            "  - order_state",
            "  - order_state\n  - route: {routes: [{when: {type: x}, to: [nowhere]}]}",
        ),
        "filters[2]: route names projections ['nowhere']",
    ),
    ("name: shop\nversion: [", "not valid YAML"),
]


def test_ten_and_more_broken_specs_give_distinct_precise_messages(tmp_path):
    messages = []
    for i, (text, expected) in enumerate(BROKEN):
        spec = tmp_path / f"broken_{i}.yaml"
        spec.write_text(text)
        done = subprocess.run(
            [CQRS, "validate", str(spec)], capture_output=True, text=True, timeout=60, env=NARROW
        )
        message = " ".join(done.stderr.split())
        assert done.returncode == 2, (i, done.stdout, done.stderr)
        assert expected in message, (i, message)
        assert str(spec) in message
        # piped, the message is not cut into lines at 80 columns: grep finds it whole
        assert any(f"error: {spec}: " in line and expected in line
                   for line in done.stderr.splitlines()), (i, done.stderr)  # fmt: skip
        messages.append(message)
    assert len(set(messages)) == len(BROKEN) >= 10


@pytest.mark.parametrize(
    "spec", ["examples/orders/specs/orders.yaml", "examples/orders/specs/orders_v2.yaml"]
)
def test_the_shipped_specs_validate(spec):
    """...and their tables are listed one projection a line, whatever COLUMNS says, when the
    output goes to a pipe."""
    from tests.conftest import REPO

    shown = []
    for columns in ("80", "400"):
        done = subprocess.run(
            [CQRS, "validate", str(REPO / spec)], capture_output=True, text=True, timeout=60,
            env={**os.environ, "COLUMNS": columns},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        shown.append(done.stderr.splitlines())
    assert shown[0] == shown[1]
    projections = yaml.safe_load((REPO / spec).read_text())["projections"]
    assert [line.split(":")[0] for line in shown[0][1:]] == [
        f"  projection {p['name']}" for p in projections
    ]


def test_filters_are_listed_from_the_registry():
    import operators.builtin  # noqa: F401 - the filters the CLI registers
    from operators.registry import FILTERS

    listed = subprocess.run([CQRS, "filters", "--json"], capture_output=True, text=True, timeout=60)
    builtin = [
        n for n in FILTERS.names() if FILTERS.get(n).factory.__module__.startswith("operators.")
    ]
    # (other tests of this process may have registered a domain's filters too: `modules:`)
    assert [f["name"] for f in json.loads(listed.stdout)] == builtin
    shown = subprocess.run(
        [CQRS, "filters"], capture_output=True, text=True, timeout=60, env=NARROW
    ).stdout.splitlines()
    assert "route  Chooses which projections receive each command." in shown
    assert "    routes: list[Route]  (required)" in shown
    assert "        to: list[str]  (required)" in shown  # the nested model, under its parameter
    assert any(
        line.startswith("    max_keys: int ≥ 1 ≤ 10000000  (default 100000)") for line in shown
    )
