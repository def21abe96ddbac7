import sys

import pytest

from core.schema import Table
from sinks.clickhouse import create_projection_table
from sinks.ddl import create_database, qualified
from sinks.writer import TableWriter

TABLE = Table(name="w", columns=(("k", "String"), ("v", "Int64")), order_by=("k",), version="v")


def test_one_context_serves_every_insert_and_keeps_none_of_their_data(store, unique):
    db = f"writer_{unique}"
    store.command(create_database(db))
    create_projection_table(store, db, TABLE)
    target = qualified(db, TABLE.name)
    by_columns = TableWriter(store, db, TABLE, column_oriented=True)
    by_rows = TableWriter(store, db, TABLE)

    keys = ["a", "b"]
    held = sys.getrefcount(keys)
    by_columns.insert([keys, [1, 2]], {"insert_deduplication_token": "1"})
    assert sys.getrefcount(keys) == held  # the context let the insert's columns go
    by_columns.insert([["c"], [3]], {"insert_deduplication_token": "2"})
    by_rows.insert([("d", 4), ("e", 5)], {})
    with pytest.raises(Exception, match="column count"):
        by_rows.insert([("f", 6, "one too many")], {})
    by_rows.insert([("g", 7)], {})  # a failed insert leaves no half-used context behind

    rows = store.query(f"SELECT k, v FROM {target} FINAL ORDER BY k").result_rows
    assert rows == [("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5), ("g", 7)]
