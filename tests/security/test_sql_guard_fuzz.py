"""A fuzzer for the query path's guard: SQL-ish text made of keywords, table functions,
separators, comments and quotes. Whatever it sends, the reader never crashes (a refusal, a
ClickHouse error or rows) and nothing it accepts writes: the store's tables and rows, and the
files of a watched directory, stay as they were."""

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import CqrsError
from deploy.query import Reader
from deploy.sql_guard import QueryRefused

WATCHED = Path(tempfile.mkdtemp(prefix="fuzz-watched-"))
TOKENS = [
    "SELECT", "select", "WITH", "x AS (SELECT 1)", "FROM", "WHERE", "1", "*", "number",
    "numbers(3)", "values('a UInt8', 1)", "file('/etc/passwd')", f"file('{WATCHED}/w')",
    "url('http://127.0.0.1:9/')", "remote('127.0.0.1', system.one)", "system.one",
    "system.processes", "fuzz.t", "INTO OUTFILE", f"'{WATCHED}/out'", "SETTINGS",
    "readonly = 0", "max_execution_time = 0", "FORMAT", "JSON", ";", "--", "/*", "*/", "\n",
    "'", "`", "(", ")", ",", "DROP", "DATABASE", "TABLE", "INSERT INTO", "FUNCTION", "SET",
    "SYSTEM", "KILL", "QUERY", "OPTIMIZE", "ALTER", "TRUNCATE", "EXPLAIN", "AST", "SHOW",
    "DESCRIBE", "UNION ALL", "dictGet('d', 'a', 1)", "sleep(0.01)", "count()", "AS",
    "\\", "\x00", "é", "{x:String}",
]  # fmt: skip
statements = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=14).map(" ".join) | st.text(
    max_size=60
)


def state(store):
    tables = store.query(
        "SELECT database, name, total_rows FROM system.tables WHERE database = 'fuzz' ORDER BY name"
    ).result_rows
    return tables, sorted(p.name for p in WATCHED.iterdir())


def test_the_guard_never_crashes_and_nothing_it_accepts_writes(store, store_dsn):
    store.command("CREATE DATABASE IF NOT EXISTS fuzz")
    store.command("CREATE TABLE IF NOT EXISTS fuzz.t (x UInt8) ENGINE = MergeTree ORDER BY x")
    store.command("TRUNCATE TABLE fuzz.t")
    store.command("INSERT INTO fuzz.t VALUES (1), (2), (3)")
    reader = Reader(store_dsn, timeout_s=2.0)
    before = state(store)
    seen = {"accepted": 0, "refused": 0}

    @settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
    @given(statements)
    def check(sql):
        try:
            reader.query(sql)
            seen["accepted"] += 1
        except QueryRefused:
            seen["refused"] += 1
        except CqrsError:  # ClickHouse said no (unknown table, bad types): also a refusal
            seen["refused"] += 1
        assert state(store) == before, sql

    check()
    assert seen["refused"] > 0 and seen["accepted"] > 0, seen
    assert reader.query("SELECT count() FROM fuzz.t").rows == [[3]]
