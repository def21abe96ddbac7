"""The SQL that merges window partials, run by the real ClickHouse engine: the stable view of a
windowed projection answers what the batch recomputation answers."""

import dataclasses

from hypothesis import HealthCheck, given, settings

from operators.windows import Tumbling
from sinks.clickhouse import create_projection_table
from sinks.ddl import create_database, qualified
from tests.oracles import epoch_ms
from tests.unit.operators.test_windows import (
    TumblingParams,
    batch,
    params,
    run,
    streams,
)

_counter = iter(range(10**6))


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(streams())
def test_view_merges_partials_like_the_batch(store, unique, stream):
    events, cuts = stream
    window = Tumbling("w", params(TumblingParams, size=10_000))
    rows, _ = run(window, events, cuts)
    db = f"views_{unique}"
    table_name = f"t{next(_counter)}"
    store.command(create_database(db))
    table = dataclasses.replace(window.table, name=table_name)
    create_projection_table(store, db, table)
    if rows:
        store.insert(
            qualified(db, table_name), [r.row for r in rows], column_names=table.column_names
        )
    got = {}
    for r in store.query(window.view(qualified(db, table_name))).named_results():
        start = epoch_ms(r["window_start"])
        got[(start, start + 10_000, r["group"])] = r
    want = batch(
        events,
        lambda e: [(e.command.ts // 10_000 * 10_000, e.command.ts // 10_000 * 10_000 + 10_000)],
    )
    assert got.keys() == want.keys()
    for key, w in want.items():
        g = got[key]
        assert g["n"] == w["n"]
        assert abs(g["total"] - w["total"]) < 1e-6
        assert g["low"] == w["low"] and g["high"] == w["high"]
        assert abs(g["mean"] - w["mean"]) < 1e-6
        assert g["buyers"] == w["buyers"]
        assert g["approx_buyers"] == w["approx_buyers"]
        assert [(sku, weight) for sku, weight in g["top"]] == w["top"]
