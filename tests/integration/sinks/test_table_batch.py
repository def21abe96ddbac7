"""A worker's partitions of one table written together, into the embedded engine: one row insert
and one progress insert per flush whatever the number of partitions, the token naming every
partition's range, progress only after the rows, and a refused row sent to the DLQ under its
own partition."""

import gc
import time
from typing import Any

import pytest
from clickhouse_connect.driver.insert import InsertContext

from core.schema import Table
from sinks.clickhouse import ProjectionSink, create_projection_table
from sinks.ddl import create_database
from sinks.progress import create_progress_table, read_progress
from sinks.store import open_client
from sinks.table_batch import Limits, Observers, TableBatch
from tests.faults import FaultPlan

TABLE = Table(name="t", columns=(("k", "String"), ("v", "Int64")), order_by=("k",), version="v")


class Recording:
    """The client's inserts in order: (table, rows, token)."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.inserts: list[tuple[str, int, str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def insert(self, table: str, data: Any, **kw: Any) -> Any:
        result = self._real.insert(table, data, **kw)  # recorded once it is written
        context = kw["context"]  # the table's own, reused (sinks/writer.py)
        rows = len(data[0]) if context.column_oriented else len(data)
        token = context.settings.get("insert_deduplication_token", "")
        self.inserts.append((table.split(".")[-1].strip("`"), rows, token))
        return result


class Dlq:
    def __init__(self) -> None:
        self.rejected: list[Any] = []

    def write(self, rejected: list[Any]) -> None:
        self.rejected.extend(rejected)

    def close(self) -> None:
        pass


def test_a_workers_partitions_share_one_insert_and_one_progress_insert(store, store_dsn, unique):
    db = f"batch_{unique}"
    store.command(create_database(db))
    create_progress_table(store, db)
    create_projection_table(store, db, TABLE)
    plan = FaultPlan(refuse=lambda row: row[0] == "bad")
    client = Recording(plan.factory()(store_dsn))
    dlq = Dlq()
    flushed: list[int] = []
    observers = Observers(on_flush=lambda table, rows, s: flushed.append(rows))
    batch = TableBatch(db, TABLE, client, Limits(1000, 3600.0), lambda: dlq, observers)
    for partition, resumed in ((0, None), (1, 4), (2, None)):  # 1 resumed after offset 4
        batch.attach(partition, resumed)
    now = int(time.time() * 1000)

    batch.add(0, [(0, 1, now, [("a", 1)]), (2, 2, now, [("b", 2)])])
    batch.add(1, [(5, 6, now, [("bad", 6), ("c", 6)])])
    batch.add(2, [(0, 3, now, [])])  # read, nothing for this table
    assert client.inserts == []  # neither max_rows nor max_delay reached
    assert batch.written == {0: -1, 1: 4, 2: -1}

    batch.flush()
    token = f"{db}.t:0:0-2,1:5-6,2:0-3"
    tables = [t for t, _, _ in client.inserts]
    assert tables[-1] == "_progress" and tables.count("_progress") == 1  # after the rows
    assert client.inserts[-1][1] == 3  # one progress row per partition, in one insert
    written = [(rows, tok) for t, rows, tok in client.inserts if t == "t"]
    assert written and all(tok.startswith(token) for _, tok in written)
    assert sum(rows for rows, _ in written) == 3  # the refused row is not among them
    assert flushed == [4]
    assert batch.written == {0: 2, 1: 6, 2: 3}
    assert read_progress(store, db) == {"t": {0: 2, 1: 6, 2: 3}}
    assert store.query(f"SELECT k FROM {db}.t FINAL ORDER BY k").result_columns[0] == [
        "a",
        "b",
        "c",
    ]
    [rejected] = dlq.rejected
    assert (rejected.record.partition, rejected.record.offset) == (1, 6)
    assert b'"bad"' in rejected.record.value

    before = len(client.inserts)
    batch.flush()  # nothing buffered: nothing sent
    assert len(client.inserts) == before

    due = TableBatch(db, TABLE, client, Limits(2, 3600.0), lambda: dlq, Observers())
    due.attach(0, 2)
    due.attach(1, 6)
    due.add(0, [(3, 3, now, [("d", 3)])])
    assert len(client.inserts) == before
    due.add(1, [(7, 7, now, [("e", 7)])])  # max_rows across the partitions: written now
    assert [t for t, _, _ in client.inserts[before:]] == ["t", "_progress"]
    assert client.inserts[before][2] == f"{db}.t:0:3-3,1:7-7"
    assert read_progress(store, db)["t"] == {0: 3, 1: 7, 2: 3}

    # a projector's row of another width is refused whole: no column of the buffer grew
    with pytest.raises(ValueError, match="has 2 columns, a row of partition 0 has 1"):
        due.add(0, [(8, 8, now, [("f",), ("g",)])])
    at = len(client.inserts)
    due.flush()
    assert [t for t, _, _ in client.inserts[at:]] == ["_progress"]


def test_a_part_bytewax_drops_for_its_resumed_twin_leaves_the_others_writing(
    store, store_dsn, unique
):
    """On resume Bytewax may build a part lazily (items came before the snapshot), build it
    again from the snapshot and drop the first, which closes it: the worker's other parts go
    on writing through the shared batch."""
    db = f"batch_{unique}"
    store.command(create_database(db))
    create_progress_table(store, db)
    create_projection_table(store, db, TABLE)
    sink = ProjectionSink(db, TABLE, store_dsn, [0, 1], dlq=Dlq, max_delay_s=3600.0)
    now = int(time.time() * 1000)
    lazy = sink.build_part("t__sink", "0", None)
    other = sink.build_part("t__sink", "1", None)
    lazy.write_batch([(10, 11, now, [("a", 11)])])
    resumed = sink.build_part("t__sink", "0", 9)
    lazy.close()  # dropped by Bytewax
    other.write_batch([(0, 3, now, [("b", 3)])])
    assert other.snapshot() == 3
    assert resumed.snapshot() == 11  # what the dropped twin wrote is written
    keys = store.query(f"SELECT k FROM {db}.t FINAL ORDER BY k").result_columns[0]
    assert keys == ["a", "b"]
    assert read_progress(store, db) == {"t": {0: 11, 1: 3}}
    other.close()
    resumed.close()
    sink.close_all()


def test_a_tables_inserts_leave_nothing_for_the_cycle_collector(store, store_dsn, unique):
    """The runtime runs the collector rarely (deploy/memory.py): a context made per insert
    refers to itself, and kept its flush's columns alive until a collection."""
    db = f"batch_{unique}"
    store.command(create_database(db))
    create_progress_table(store, db)
    create_projection_table(store, db, TABLE)
    batch = TableBatch(db, TABLE, open_client(store_dsn), Limits(1, 3600.0), Dlq, Observers())
    batch.attach(0, None)
    now = int(time.time() * 1000)
    gc.collect()
    gc.disable()
    try:
        before = _contexts()
        for offset in range(5):
            batch.add(0, [(offset, offset, now, [(f"k{offset}", offset)])])
        made = _contexts() - before
    finally:
        gc.enable()
    assert made == 2  # after 5 flushes: the table's and its progress table's, both in use
    assert read_progress(store, db) == {"t": {0: 4}}
    assert store.query(f"SELECT count() FROM {db}.t FINAL").result_rows == [(5,)]


def _contexts() -> int:
    return sum(isinstance(o, InsertContext) for o in gc.get_objects())
