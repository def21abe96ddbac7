"""What the runtime sends a ClickHouse cluster. No server can run here: the statements are
captured at the client boundary, checked for what a cluster needs (every DDL `ON CLUSTER`,
replicated engines, sharded projections behind Distributed tables), and each is parsed by the
embedded engine's own parser, which is the server's."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from core.errors import StoreError
from core.schema import Table
from dataflows.metrics import Metrics
from deploy.deployment import Deployment, DeploymentConfig
from deploy.records import Records
from deploy.stable import StableLayer
from sinks import ddl
from sinks.clickhouse import DEDUP_WINDOW, check_dedup_window, create_projection_table
from sinks.progress import create_progress_table

CLUSTER = "cqrs"
DDL = re.compile(r"^(CREATE|ALTER|DROP|GRANT|REVOKE)\b")


class ServerScript:
    """A client that records what it is sent and answers the catalogue queries as a server
    whose tables are replicated would; DESCRIBE goes to the embedded engine, which holds the
    same tables unsharded."""

    def __init__(self, store: Any, server_window: int = 10_000) -> None:
        self.sent: list[str] = []
        self.store = store
        self.server_window = server_window
        self.engine_full = ""

    def command(self, sql: str, **_: Any) -> Any:
        self.sent.append(sql)
        if "system.merge_tree_settings" in sql:
            return str(self.server_window)
        if sql.startswith("SELECT count()"):
            return 0
        return None

    def query(self, sql: str, **_: Any) -> Any:
        if sql.startswith("DESCRIBE"):
            return self.store.query(sql)
        self.sent.append(sql)
        assert "FROM system.tables" in sql, sql
        name = re.search(r"IN \('[^']*', '([^']*)'\)", sql).group(1)
        return SimpleNamespace(
            result_rows=[(name, "ReplicatedReplacingMergeTree", self.engine_full)]
        )

    def insert(self, table: str, *_: Any, **__: Any) -> None:
        self.sent.append(f"INSERT INTO {table}")


def test_every_statement_to_a_cluster_is_made_on_every_host(store, orders_pipeline):
    name = orders_pipeline.deployment
    store.command(ddl.create_database(name))  # the same tables, unsharded, for DESCRIBE
    for projection in orders_pipeline.projections:
        for table in projection.output.tables:
            create_projection_table(store, name, table)
    server = ServerScript(store)
    Records(server, "cqrs", CLUSTER).create_tables()
    layer = StableLayer(server, "cqrs", "query", CLUSTER)
    layer.create_tables()
    server.command(ddl.create_database(name, CLUSTER))
    create_progress_table(server, name, CLUSTER)
    tables = [t for p in orders_pipeline.projections for t in p.output.tables]
    for table in tables:
        create_projection_table(server, name, table, CLUSTER)
        check_dedup_window(server, name, table, DEDUP_WINDOW)
    layer.rebuild(orders_pipeline.name, [(name, orders_pipeline)], retired={"gone"})
    layer.switch(orders_pipeline.name, name)
    server.command(ddl.drop_database(name, CLUSTER))

    statements = [s for s in server.sent if DDL.match(s)]
    assert len(statements) >= 10 + 2 * len(tables), statements
    for sql in statements:
        assert f"ON CLUSTER `{CLUSTER}`" in sql, sql
        # the server's parser (the embedded engine's) takes each, and keeps the clause
        parsed = store.command(f"SELECT formatQuerySingleLine({ddl.literal(sql)})")
        assert f"ON CLUSTER {CLUSTER}" in str(parsed), (sql, parsed)
    creates = [s for s in statements if s.startswith("CREATE TABLE")]
    engines = [re.search(r"ENGINE = (\w+)\((.*)\)", s).groups() for s in creates]
    for engine, _ in engines:
        assert engine.startswith("Replicated") or engine == "Distributed", engine
    whole = [a for e, a in engines if e.startswith("Replicated") and "/whole'" in a]
    sharded = [a for e, a in engines if e.startswith("Replicated") and "/{shard}'" in a]
    # registry (2), pointer, progress on every host; each projection's rows on its shard
    assert len(whole) == 4 and len(sharded) == len(tables), engines
    for table in tables:
        local = f"{table.name}{ddl.LOCAL_SUFFIX}"
        local_sql = next(s for s in creates if f"`{name}`.`{local}`" in s)
        assert f"replicated_deduplication_window = {DEDUP_WINDOW}" in local_sql
        assert "replicated_deduplication_window_seconds = 604800" in local_sql
        key = ", ".join(f"`{c}`" for c in table.order_by)
        assert f"ENGINE = Distributed('{CLUSTER}', '{name}', '{local}', cityHash64({key}))" in next(
            s for s in creates if f"`{name}`.`{table.name}` ON" in s
        )
    assert any(s.startswith("DROP VIEW IF EXISTS `query`.`gone` ON CLUSTER") for s in statements)
    assert all(" SYNC" in s for s in statements if s.startswith("DROP DATABASE"))
    assert "INSERT INTO `cqrs`.`active`" in server.sent


def test_a_deployment_with_a_cluster_prepares_its_tables_on_every_host(
    brokers, make_topic, orders_pipeline, tmp_path
):
    """The setting reaches what a deployment makes before it runs (a real broker: the DLQ
    topic and the log's partitions are the broker's)."""
    topic = make_topic(partitions=3)
    deployment = Deployment(
        DeploymentConfig(
            pipeline=orders_pipeline,
            brokers=brokers,
            topic=topic,
            clickhouse_dsn="http://clickhouse:8123",
            recovery_root=tmp_path,
            cluster=CLUSTER,
        ),
        Metrics(CollectorRegistry()).for_deployment("orders", 1, orders_pipeline.deployment),
    )
    server = ServerScript(None)
    assert deployment.prepare(server) == [0, 1, 2]
    name = orders_pipeline.deployment
    ddl_sent = [s for s in server.sent if DDL.match(s)]
    assert (
        ddl_sent[0] == f"CREATE DATABASE IF NOT EXISTS `{name}` ON CLUSTER `cqrs` ENGINE = Atomic"
    )
    tables = [t.name for p in orders_pipeline.projections for t in p.output.tables]
    made = {re.search(rf"`{name}`\.`(\w+)` ON CLUSTER", s).group(1) for s in ddl_sent[1:]}
    assert made == {"_progress", *tables, *(f"{t}{ddl.LOCAL_SUFFIX}" for t in tables)}
    assert all(f"ON CLUSTER `{CLUSTER}`" in s for s in ddl_sent)


def test_a_projection_named_like_a_shard_table_is_refused_on_a_cluster():
    server = ServerScript(None)
    table = Table("orders_local", (("k", "String"), ("v", "UInt64")), ("k",), "v")
    with pytest.raises(StoreError, match="cannot end in '_local'"):
        create_projection_table(server, "d", table, CLUSTER)
    assert server.sent == []
    create_projection_table(server, "d", table)  # one server: the name is free
    assert len(server.sent) == 1


@pytest.mark.parametrize(
    ("engine_full", "server_window", "refused"),
    [
        ("ReplicatedReplacingMergeTree(...) SETTINGS index_granularity = 8192", 10_000, False),
        ("ReplicatedReplacingMergeTree(...) SETTINGS index_granularity = 8192", 100, True),
        ("ReplicatedMergeTree(...) SETTINGS replicated_deduplication_window = 50", 10_000, True),
    ],
)
def test_the_window_check_reads_a_replicated_table(engine_full, server_window, refused):
    """Replicated tables deduplicate by default, with the server's window unless they set
    their own: the check reads the shard's table, and the fix names the setting to raise."""
    server = ServerScript(None, server_window)
    server.engine_full = engine_full
    table = SimpleNamespace(name="orders")
    if not refused:
        check_dedup_window(server, "d", table, 1_000)
        return
    with pytest.raises(StoreError, match="replicated_deduplication_window = 1000") as caught:
        check_dedup_window(server, "d", table, 1_000)
    assert "ALTER TABLE `d`.`orders_local`" in str(caught.value)


def test_the_reader_user_on_a_cluster(store):
    statements = ddl.reader_user("reader", "secret", {"max_execution_time": 30}, CLUSTER)
    for sql in statements:
        assert f"ON CLUSTER `{CLUSTER}`" in sql, sql
        parsed = store.command(f"SELECT formatQuerySingleLine({ddl.literal(sql)})")
        assert f"ON CLUSTER {CLUSTER}" in str(parsed), (sql, parsed)
