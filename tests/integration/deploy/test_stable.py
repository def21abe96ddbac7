"""The stable layer's SQL on the real ClickHouse engine: views over two deployments of a pipeline
that differ in columns and projections, one pointer row that moves every view at once, and
rebuilds that add, keep and drop views."""

import pytest

from core.envelope import Command, Envelope, LogRecord
from dataflows.spec import Pipeline, parse_pipeline
from deploy.stable import StableLayer
from sinks.clickhouse import create_projection_table
from sinks.ddl import create_database, qualified

V1 = """\
name: {name}
version: 1
modules: [examples.orders.order_state]
filters: [order_state]
projections:
  - name: orders
    steps: [order_rows]
  - name: per_minute
    steps:
      - tumbling: {{size: 1m, aggregates: {{n: count}}}}
  - name: legacy
    steps:
      - tumbling: {{size: 1h, aggregates: {{n: count}}}}
"""
V2 = """\
name: {name}
version: 2
modules: [examples.orders.order_state]
filters: [order_state]
projections:
  - name: orders
    steps: [order_rows]
  - name: per_minute
    steps:
      - tumbling:
          size: 1m
          group_by: {{region: data.region}}
          aggregates: {{n: count, total: {{sum: data.amount}}}}
  - name: placed
    steps:
      - tumbling: {{size: 1m, aggregates: {{n: count}}}}
  - name: out
    topic: out
    steps: [forward]
"""


def envelope(offset, ts, region, amount):
    command = Command(
        id=f"c{offset}", type="t", aggregate_id="a", ts=ts, v=1,
        data={"region": region, "amount": amount},
    )  # fmt: skip
    return Envelope(LogRecord(0, offset, ts, b"a", b""), command)


EVENTS = [
    envelope(0, 60_000, "eu", 2.0),
    envelope(1, 61_000, "us", 3.0),
    envelope(2, 125_000, "eu", 4.0),
]


def deploy(store, name: str, pipeline: Pipeline, orders: list[str]) -> None:
    """A deployment's database as its sinks would leave it: projection tables with rows."""
    store.command(create_database(name))
    for projection in pipeline.projections:
        for table in projection.output.tables:
            create_projection_table(store, name, table)
            if projection.name == "orders":
                values = ", ".join(f"('{o}', {i})" for i, o in enumerate(orders))
                store.command(f"INSERT INTO `{name}`.orders (order_id, version) VALUES {values}")
                continue
            window = projection.projector
            rows = [r.row for r in window.process(window.restore(None), EVENTS)]
            store.insert(qualified(name, projection.name), rows, column_names=table.column_names)


@pytest.fixture
def layer(store, unique):
    stable = StableLayer(store, f"ctl_{unique}", f"views_{unique}")
    stable.create_tables()
    stable.create_tables()  # idempotent: every runtime start runs it
    return stable


def rows(store, sql):
    return [list(r) for r in store.query(sql).result_rows]


def test_one_pointer_moves_every_view_of_a_pipeline(store, unique, layer):
    p, views = f"p{unique}", f"views_{unique}"
    v1 = parse_pipeline(V1.format(name=p), "v1.yaml")
    v2 = parse_pipeline(V2.format(name=p), "v2.yaml")
    d1, d2 = f"{p}_v1", f"{p}_v2"
    deploy(store, d1, v1, ["a", "b"])
    deploy(store, d2, v2, ["a", "b", "c"])

    assert layer.active(p) is None
    layer.rebuild(p, [(d1, v1)])
    assert rows(store, f"SELECT count() FROM {views}.orders") == [[0]]  # no pointer: empty
    layer.switch(p, d1)
    assert layer.active(p) == d1
    assert rows(store, f"SELECT count(), any(_deployment) FROM {views}.orders") == [[2, d1]]
    assert rows(
        store,
        f"SELECT toUnixTimestamp64Milli(window_start), n FROM {views}.per_minute ORDER BY 1",
    ) == [[60_000, 2], [120_000, 1]]

    # green beside blue: the views carry both branches, and still read blue only
    layer.rebuild(p, [(d1, v1), (d2, v2)])
    assert rows(store, f"SELECT count(), any(_deployment) FROM {views}.orders") == [[2, d1]]
    columns = [c[0] for c in rows(store, f"DESCRIBE {views}.per_minute")]
    assert columns == ["window_start", "window_end", "n", "region", "total", "_deployment"]
    assert rows(  # v1 lacks v2's columns: NULL in its branch
        store, f"SELECT region, total FROM {views}.per_minute WHERE n = 1"
    ) == [[None, None]]
    assert rows(store, f"SELECT count() FROM {views}.placed") == [[0]]  # only green has it
    assert rows(store, f"SELECT count() FROM {views}.legacy") == [[1]]
    tables = {r[0] for r in rows(store, f"SHOW TABLES FROM {views}")}
    assert tables == {"orders", "per_minute", "placed", "legacy"}  # no view for a topic

    # promote: one insert, and a query joining two views sees one deployment in both
    layer.switch(p, d2)
    assert layer.active(p) == d2
    joined = (
        f"SELECT (SELECT groupUniqArray(_deployment) FROM {views}.orders), "
        f"(SELECT groupUniqArray(_deployment) FROM {views}.per_minute)"
    )
    assert rows(store, joined) == [[[d2], [d2]]]
    assert rows(store, f"SELECT count() FROM {views}.orders") == [[3]]
    assert rows(
        store,
        f"SELECT toUnixTimestamp64Milli(window_start), region, n, total FROM {views}.per_minute "
        f"ORDER BY 1, 2",
    ) == [[60_000, "eu", 1, 2.0], [60_000, "us", 1, 3.0], [120_000, "eu", 1, 4.0]]
    assert rows(store, f"SELECT count() FROM {views}.legacy") == [[0]]  # green lacks it

    # rollback is another switch; the newest switch wins
    layer.switch(p, d1)
    assert rows(store, joined) == [[[d1], [d1]]]
    layer.switch(p, d2)
    assert layer.active(p) == d2

    # another pipeline's pointer in the same table changes nothing here
    layer.switch(f"other{unique}", d1)
    assert layer.active(p) == d2 and layer.active(f"other{unique}") == d1

    # `only`: just the named views are rebuilt; blue's branch leaves `orders` only
    layer.switch(p, d1)
    layer.rebuild(p, [(d2, v2)], only={"orders"})
    assert rows(store, f"SELECT count() FROM {views}.orders") == [[0]]  # blue's branch is gone
    assert rows(store, f"SELECT count() FROM {views}.legacy") == [[1]]  # untouched

    # cleanup: blue retired, views of projections no live deployment has are dropped
    layer.switch(p, d2)
    layer.rebuild(p, [(d2, v2)], retired={"orders", "per_minute", "placed", "legacy"})
    tables = {r[0] for r in rows(store, f"SHOW TABLES FROM {views}")}
    assert tables == {"orders", "per_minute", "placed"}
    assert rows(store, f"SELECT groupUniqArray(_deployment) FROM {views}.per_minute") == [[[d2]]]


def test_a_pipeline_with_no_switch_has_no_active_deployment(layer, unique):
    assert layer.active(f"never{unique}") is None
