"""The built-in dashboard draws the domain's panels from the stable views (a panel whose view
is not served says so) or, given no panels, none: the page then shows health and how to add
them. Against the embedded ClickHouse, through the read-only query path."""

from prometheus_client import CollectorRegistry

from deploy.dashboard import assemble_dashboard
from deploy.query import Reader
from examples.orders.dashboard import PANELS


def test_the_domain_panels_are_drawn_from_the_views_and_none_without_them(store, store_dsn, unique):
    views = f"dash_{unique}"
    store.command(f"CREATE DATABASE {views}")
    store.command(f"CREATE TABLE {views}.orders (status String, amount Float64) ENGINE = Memory")
    store.command(f"INSERT INTO {views}.orders VALUES ('paid', 10.5), ('paid', 2), ('placed', 1)")
    reader = Reader(store_dsn, timeout_s=30)
    asked: list[str] = []

    def query(sql):
        asked.append(sql)
        return reader.query(sql)

    board = assemble_dashboard(query, [], CollectorRegistry(), views, PANELS)
    assert [p.key for p in board.panels] == [p.key for p in PANELS.panels]
    drawn = {p.key: p for p in board.panels}
    assert drawn["orders_by_status"].rows == [["paid", 2, 12.5], ["placed", 1, 1.0]]
    for key in ("revenue_by_region", "paid_by_region", "top_skus"):
        assert drawn[key].error == "not served by the active deployment", key
    assert all(f"{views}." in sql for sql in asked) and len(asked) == len(PANELS.panels)

    asked.clear()
    bare = assemble_dashboard(query, [], CollectorRegistry(), views, None)
    assert bare.panels == [] and bare.deployments == [] and asked == []
