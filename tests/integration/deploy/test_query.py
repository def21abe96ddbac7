from deploy.query import Reader


def test_an_empty_result_keeps_its_columns(store_dsn, store):
    """The embedded engine sends no header with an empty result; the reader describes it, so
    `cqrs query` and the demo show the table's columns over zero rows."""
    reader = Reader(store_dsn, timeout_s=30)
    empty = reader.query("SELECT number AS n, toString(n) AS s FROM numbers(3) WHERE n > 5")
    assert (empty.columns, empty.types, empty.rows) == (["n", "s"], ["UInt64", "String"], [])
    assert reader.query("SELECT 7 AS seven").rows == [[7]]  # the session is still in step
    shown = reader.query("SHOW DATABASES LIKE 'no_such_database%'")
    assert shown.rows == [] and reader.query("SELECT 8").rows == [[8]]
