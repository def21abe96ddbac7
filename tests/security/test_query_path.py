"""The query path is read-only by construction, the same through the runtime (POST /query) and
through `cqrs query` opening the store itself: an attack corpus, each statement refused with
its reason; afterwards the databases, tables, row counts and files are as they were, nothing
outside the data dir was read or written, and ordinary dashboard queries still work."""

import json
import subprocess
import sys

import pytest

from examples.orders.dashboard import PANELS
from tests.conftest import REPO
from tests.e2e.test_cli import cqrs
from tests.security.conftest import QUERY_TIMEOUT_S

MULTI = "more than one statement"
NOT_READ = "is not allowed; queries here are read-only"
OUTFILE = "INTO OUTFILE writes a file"
FILE = "file() reads a file of the host"
TABLE_FN = "reaches outside the store"
SYSTEM = "is not readable here"
SETTINGS = "SETTINGS would change the query path's fixed limits"
DICT = "reads a dictionary"

#: (statement, what the refusal must say); {data} is the data dir, {canary} a file outside it
CORPUS = [
    ("SELECT 1; DROP DATABASE cqrs; SELECT 1", MULTI),
    ("SELECT 1 /* ; */; DROP DATABASE query", MULTI),
    ("SELECT 1 -- hidden\n; DROP TABLE query.orders", MULTI),
    ("sElEcT 1;\n\tdRoP dAtAbAsE cqrs", MULTI),
    ("DROP DATABASE cqrs", "DROP " + NOT_READ),
    ("drop table query.orders", "DROP " + NOT_READ),
    ("INSERT INTO FUNCTION file('{data}/evil.pth', 'RawBLOB') SELECT 'import os'", "INSERT"),
    ("SELECT 'import os' INTO OUTFILE '{data}/evil.pth'", OUTFILE),
    ("SELECT * FROM query.orders INTO OUTFILE '{canary}' TRUNCATE FORMAT CSV", OUTFILE),
    ("EXPLAIN SELECT 1 INTO OUTFILE '{data}/evil_explain'", OUTFILE),
    ("SELECT * FROM file('/etc/passwd')", FILE),
    ("SELECT file('/proc/self/environ')", FILE),
    ("SELECT * FROM FILE('{canary}', 'LineAsString')", FILE),
    ("DESCRIBE file('/etc/passwd')", FILE),
    ("SELECT 1 UNION ALL SELECT length(file('/etc/hostname'))", FILE),
    ("SELECT * FROM url('http://127.0.0.1:9/x', 'RawBLOB')", TABLE_FN),
    ("WITH (SELECT 1) AS x SELECT * FROM URL('http://127.0.0.1:9/x', 'RawBLOB')", TABLE_FN),
    ("SELECT * FROM remote('127.0.0.1:9000', system.one)", TABLE_FN),
    ("SELECT * FROM remoteSecure('127.0.0.1:9440', system.one)", TABLE_FN),
    ("SELECT * FROM s3('http://127.0.0.1:9/b/k')", TABLE_FN),
    ("SELECT * FROM hdfs('hdfs://127.0.0.1:9/x', 'TSV', 'a String')", TABLE_FN),
    ("SELECT * FROM azureBlobStorage('http://127.0.0.1:9', 'c', 'b')", TABLE_FN),
    ("SELECT * FROM cluster('default', system.one)", TABLE_FN),
    ("SELECT * FROM clusterAllReplicas('default', system.one)", TABLE_FN),
    ("SELECT * FROM mysql('127.0.0.1:9', 'd', 't', 'u', 'p')", TABLE_FN),
    ("SELECT * FROM postgresql('127.0.0.1:9', 'd', 't', 'u', 'p')", TABLE_FN),
    ("SELECT * FROM odbc('DSN=x', 't')", TABLE_FN),
    ("SELECT * FROM jdbc('jdbc:x', 't')", TABLE_FN),
    ("SELECT * FROM sqlite('{canary}', 't')", TABLE_FN),
    ("SELECT * FROM mongodb('127.0.0.1:9', 'd', 'c', 'u', 'p', 'x String')", TABLE_FN),
    ("SELECT * FROM redis('127.0.0.1:9', 'k', 'k String')", TABLE_FN),
    ("SELECT * FROM executable('id', 'TSV', 'x String')", TABLE_FN),
    ("SELECT * FROM python('x')", TABLE_FN),
    ("SELECT * FROM input('x String')", TABLE_FN),
    ("SELECT * FROM merge('system', '^processes$')", TABLE_FN),
    ("SELECT * FROM dictionary('d')", DICT),
    ("SELECT * FROM fileCluster('default', '/etc/passwd')", TABLE_FN),
    ("SELECT * FROM urlCluster('default', 'http://127.0.0.1:9/x')", TABLE_FN),
    ("SELECT * FROM s3Cluster('default', 'http://127.0.0.1:9/b/k')", TABLE_FN),
    ("SELECT * FROM icebergS3('http://127.0.0.1:9/t')", TABLE_FN),
    ("SELECT * FROM deltaLake('http://127.0.0.1:9/t')", TABLE_FN),
    ("SELECT * FROM hudi('http://127.0.0.1:9/t')", TABLE_FN),
    ("SELECT * FROM loop(numbers(10))", TABLE_FN),
    ("SELECT * FROM view(SELECT 1)", TABLE_FN),
    ("SELECT * FROM filesystem('/')", TABLE_FN),
    ("SELECT dictGet('d', 'a', toUInt64(1))", DICT),
    ("SELECT addressToSymbol(toUInt64(1))", "introspection"),
    ("SELECT query FROM system.processes", SYSTEM),
    ("SELECT query FROM SYSTEM.QUERY_LOG", SYSTEM),
    ("SELECT * FROM query.orders WHERE order_id IN (SELECT name FROM system.users)", SYSTEM),
    ("SELECT count() FROM query.orders SETTINGS max_execution_time = 0", SETTINGS),
    ("SELECT 1 SETTINGS readonly = 0", SETTINGS),
    ("SET readonly = 0", "SET " + NOT_READ),
    ("SET max_result_rows = 0", "SET " + NOT_READ),
    ("SYSTEM STOP MERGES", "SYSTEM " + NOT_READ),
    ("SYSTEM SHUTDOWN", "SYSTEM " + NOT_READ),
    ("KILL QUERY WHERE 1 SYNC", "KILL " + NOT_READ),
    ("OPTIMIZE TABLE orders_v1.orders FINAL", "OPTIMIZE " + NOT_READ),
    ("ALTER TABLE orders_v1.orders DELETE WHERE 1", "ALTER " + NOT_READ),
    ("TRUNCATE TABLE orders_v1.orders", "TRUNCATE " + NOT_READ),
    ("RENAME TABLE orders_v1.orders TO orders_v1.gone", "RENAME " + NOT_READ),
    ("EXCHANGE TABLES orders_v1.orders AND cqrs.deployments", "EXCHANGE " + NOT_READ),
    ("BACKUP DATABASE cqrs TO File('{data}/evil_backup')", "BACKUP " + NOT_READ),
    ("CREATE TABLE default.evil (x UInt8) ENGINE = Memory", "CREATE " + NOT_READ),
    ("CREATE DATABASE evil", "CREATE " + NOT_READ),
    ("INSERT INTO cqrs.deployments (name) VALUES ('evil')", "INSERT " + NOT_READ),
    ("DELETE FROM orders_v1.orders WHERE 1", "DELETE " + NOT_READ),
    ("GRANT ALL ON *.* TO default", "GRANT " + NOT_READ),
    ("USE system", "USE " + NOT_READ),
    ("SHOW PROCESSLIST", "SHOW PROCESSLIST " + NOT_READ),
    ("SHOW GRANTS", "SHOW GRANTS " + NOT_READ),
    ("EXPLAIN AST DROP DATABASE cqrs", "EXPLAIN is allowed of a plain SELECT only"),
    ("SELECT 1 AS `x\n   Function file (children 1)`", "cannot be read unambiguously"),
    ("SELECT number FROM numbers(50000000)", "capped: the result is over 100,000 rows"),
    ("SELECT repeat('x', 100000) FROM numbers(1000)", "capped: the result is over"),
    ("SELECT count() FROM numbers(100000000000)", "would read more than 1,000,000,000 rows"),
    ("SELECT count() FROM system.numbers", "would read more than 1,000,000,000 rows"),
    (
        "SELECT count() FROM numbers(100000) AS a, numbers(100000) AS b, numbers(100000) AS c",
        f"ran past {QUERY_TIMEOUT_S:g} s",
    ),
]

SNAPSHOT = [
    "SELECT name FROM system.databases ORDER BY name",
    "SELECT database, name, engine, total_rows FROM system.tables "
    "WHERE database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema') "
    "ORDER BY database, name",
]


def corpus(stack):
    return [
        (sql.format(data=stack.data_dir, canary=stack.canary), reason) for sql, reason in CORPUS
    ]


def files(stack):
    """Every file of the data dir outside the store (the store's parts move with merges: the
    snapshot queries cover it), with its size, but for what running deployments and the
    store's holder write (recovery snapshots every epoch, the lock file's pid: None); and
    anything named evil anywhere."""
    found = {
        str(p.relative_to(stack.data_dir)): (
            None
            if p.name.endswith(".lock") or p.relative_to(stack.data_dir).parts[0] == "recovery"
            else p.stat().st_size
        )
        for p in stack.data_dir.rglob("*")
        if p.is_file() and "clickhouse" not in p.relative_to(stack.data_dir).parts[:1]
    }
    evil = sorted(str(p) for p in stack.data_dir.rglob("evil*"))
    return found, evil


def test_the_corpus_is_large_enough():
    assert len(CORPUS) >= 30
    dangerous = {"file", "url", "remote", "s3", "hdfs", "azureBlobStorage", "mysql", "executable"}
    assert all(any(f"{name}(" in sql for sql, _ in CORPUS) for name in dangerous)


def test_attacks_through_the_runtime_are_refused_with_their_reason(stack):
    stack.settle(still=lambda: ([stack.query(sql) for sql in SNAPSHOT], files(stack)))
    before = [stack.query(sql) for sql in SNAPSHOT]
    before_files = files(stack)
    canary = stack.canary.read_text()
    for sql, reason in corpus(stack):
        status, doc = stack.query(sql)
        assert status == 400, (sql, status, doc)
        assert reason in doc["error"], (sql, doc)
        assert doc["error"].split(":")[0] in ("refused", "capped", "stopped"), doc
    assert [stack.query(sql) for sql in SNAPSHOT] == before
    assert files(stack) == before_files and before_files[1] == []
    assert stack.canary.read_text() == canary
    status, _, doc = stack.call("GET", "/health")
    assert status == 200 and doc["status"] == "ok"


def test_dashboard_queries_still_work(stack):
    status, doc = stack.query("SHOW TABLES FROM query")
    views = {row[0] for row in doc["rows"]}
    served = [p for p in PANELS.panels if any(f"{{views}}.{v} " in p.query for v in views)]
    assert len(served) >= 3  # orders v1 serves all but the top SKUs (a v2 projection)
    for panel in served:
        status, doc = stack.query(panel.sql("query"))
        assert status == 200, (panel.title, doc)
        assert doc["columns"] == list(panel.columns) and doc["rows"], panel.title
    status, _, data = stack.call("GET", "/dashboard/data")
    assert status == 200
    drawn = {p["key"] for p in data["panels"] if p.get("rows")}
    assert drawn == {p.key for p in served}


def test_attacks_through_the_cli_opening_the_store_are_refused(stack):
    stack.settle()
    stack.stop()  # `cqrs query` opens the store itself only when no runtime holds it
    try:
        before_files = files(stack)
        canary = stack.canary.read_text()
        statements = [sql for sql in SNAPSHOT] + [sql for sql, _ in corpus(stack)] + SNAPSHOT
        done = subprocess.run(
            [sys.executable, "-m", "tests.security.run_queries"],
            input=json.dumps(statements), env=stack.env, cwd=REPO,
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        answers = json.loads(done.stdout)
        snapshot = len(SNAPSHOT)
        assert answers[:snapshot] == answers[-snapshot:]
        assert all("rows" in a for a in answers[:snapshot])
        for (sql, reason), answer in zip(corpus(stack), answers[snapshot:-snapshot], strict=True):
            assert reason in answer.get("error", ""), (sql, answer)
        assert files(stack) == before_files and before_files[1] == []
        assert stack.canary.read_text() == canary
        # and `cqrs query` itself says why, with exit code 2
        refused = cqrs(stack.env, "query", "SELECT 1; DROP DATABASE cqrs", check=False)
        assert refused.returncode == 2 and MULTI in " ".join(refused.stderr.split())
        shown = cqrs(stack.env, "query", "SELECT count() FROM query.orders", "--format", "json")
        assert json.loads(shown.stdout)["rows"][0][0] > 0
    finally:
        stack.start()


@pytest.mark.parametrize("sql", ["SHOW TABLES FROM query", "DESCRIBE TABLE query.orders",
                                 "EXPLAIN SELECT count() FROM query.orders",
                                 "WITH 2 AS two SELECT two * number FROM numbers(3)",
                                 "SELECT * FROM values('x UInt8', 1, 2)",
                                 "SELECT count() FROM system.tables"])  # fmt: skip
def test_reads_are_answered(stack, sql):
    status, doc = stack.query(sql)
    assert status == 200 and doc["rows"], doc
