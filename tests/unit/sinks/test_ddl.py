import pytest

from core.errors import StoreError
from core.schema import Table
from sinks.ddl import create_database, create_or_replace_view, create_table, ident


def table(**kw):
    base = dict(name="t", columns=(("k", "String"), ("v", "UInt64")), order_by=("k",), version="v")
    return Table(**{**base, **kw})


def test_replacing_merge_tree_with_version_and_settings():
    sql = create_table("db", table(settings={"non_replicated_deduplication_window": 100}))
    assert "CREATE TABLE IF NOT EXISTS `db`.`t`" in sql
    assert "ENGINE = ReplacingMergeTree(`v`)" in sql
    assert "ORDER BY (`k`)" in sql
    assert "SETTINGS non_replicated_deduplication_window = 100" in sql


def test_on_a_cluster_tables_are_replicated_within_a_shard_or_on_every_host():
    sharded = create_table("db", table(), "main", sharded=True)
    assert "CREATE TABLE IF NOT EXISTS `db`.`t` ON CLUSTER `main` (" in sharded
    path = "'/clickhouse/tables/{uuid}/{shard}', '{replica}'"
    assert f"ENGINE = ReplicatedReplacingMergeTree({path}, `v`)" in sharded
    whole = create_table("db", table(version=None), "main")
    assert "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{uuid}/whole', '{replica}')" in whole
    assert create_database("db", "main") == (
        "CREATE DATABASE IF NOT EXISTS `db` ON CLUSTER `main` ENGINE = Atomic"
    )
    with pytest.raises(StoreError):
        create_table("db", table(), "main; DROP")


def test_plain_merge_tree_without_version():
    assert "ENGINE = MergeTree\n" in create_table("db", table(version=None))


@pytest.mark.parametrize("name", ["a b", "x;DROP", "1abc", "", "`q`"])
def test_identifiers_are_checked(name):
    with pytest.raises(StoreError, match="not a usable ClickHouse name"):
        ident(name)


@pytest.mark.parametrize("bad", ["String; DROP TABLE x", "String -- c", "Strin`g"])
def test_types_cannot_carry_sql(bad):
    with pytest.raises(StoreError, match="column type"):
        create_table("db", table(columns=(("k", bad), ("v", "UInt64"))))


def test_types_with_arguments_pass():
    sql = create_table("db", table(columns=(("k", "DateTime64(3, 'UTC')"), ("v", "UInt64"))))
    assert "`k` DateTime64(3, 'UTC')" in sql


def test_stable_view_wraps_the_projectors_query():
    sql = create_or_replace_view("query", "orders", "SELECT 1")
    assert sql == "CREATE OR REPLACE VIEW `query`.`orders` AS SELECT 1"
    with pytest.raises(StoreError):
        create_or_replace_view("query", "orders; DROP", "SELECT 1")


def test_identifiers_are_matched_whole():
    import pytest

    from core.errors import StoreError
    from sinks.ddl import check_type, ident

    for bad in ("orders\n", "orders\nDROP", "a`b", "", "1x", "x" * 129):
        with pytest.raises(StoreError):
            ident(bad)
    with pytest.raises(StoreError):
        check_type("String\n")
