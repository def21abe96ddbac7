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
    envelope,
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


def test_the_view_counts_distinct_values_exactly_below_k_and_closely_above(store, unique):
    """Three partitions' sketches of overlapping buyers, merged by the view's SQL: exact for a
    group with fewer distinct values than the sketch keeps, within 10% for 40,000."""
    aggregates = {"approx": {"approx_count_distinct": "data.buyer"}}
    window = Tumbling("w", params(TumblingParams, size=3_600_000, aggregates=aggregates))
    rows = []
    for p in range(3):
        batch_ = [
            envelope(p, i, 1_000, "small", 1.0, f"s{p * 150 + i}", []) for i in range(300)
        ] + [
            envelope(p, 300 + i, 2_000, "large", 1.0, f"b{p * 10_000 + i}", [])
            for i in range(20_000)
        ]
        rows += [r.row for r in window.process(window.restore(None), batch_)]
    sketch = window.table.column_names.index("approx")
    assert max(len(r[sketch]) for r in rows) <= 1024  # each partial keeps k hashes at most
    db, table = f"kmv_{unique}", window.table
    store.command(create_database(db))
    create_projection_table(store, db, table)
    store.insert(qualified(db, table.name), rows, column_names=table.column_names)
    got = {
        r["group"]: r["approx"]
        for r in store.query(window.view(qualified(db, table.name))).named_results()
    }
    assert got["small"] == 600  # 3 x 300 buyers, half of each shared with the next partition
    assert abs(got["large"] - 40_000) / 40_000 < 0.1
