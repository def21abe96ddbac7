"""What `cqrs status` computes for a deployment, from its registry record, its progress rows and
the log's end offsets, on the real ClickHouse engine (the end offsets are given, as the broker
would report them)."""

import msgspec
import pytest

from dataflows.spec import parse_pipeline
from deploy.records import Record
from deploy.specs import Specs
from deploy.status import describe, written
from operators.code import allow_list
from sinks.clickhouse import create_projection_table
from sinks.ddl import create_database
from sinks.progress import create_progress_table, progress_writer, record_progress

SPEC = """\
name: shop
version: 1
modules: [examples.orders.order_state]
filters: [order_state]
projections:
  - name: orders
    steps: [order_rows]
  - name: per_minute
    steps:
      - tumbling: {size: 1m, aggregates: {n: count}}
  - name: out
    topic: shop_out
    steps: [forward]
"""
TABLES = ["orders", "per_minute"]  # `out` writes a topic: no table, no progress of its own
SPECS = Specs(allow_list())


@pytest.fixture
def db(store, unique):
    return f"status_{unique}"


def record(db, **changes):
    fields = {
        "name": db, "pipeline": "shop", "version": 1, "spec": SPEC, "source": "shop.yaml",
        "topic": "shop_log", "start": {0: 10, 1: 0}, "stop": {0: 50, 1: 30}, "state": "running",
    }  # fmt: skip
    return Record(**{**fields, **changes})


def ends(offsets):
    seen = []

    def end_offsets(topic):
        seen.append(topic)
        return offsets

    return end_offsets, seen


def create(store, db):
    store.command(create_database(db))
    create_progress_table(store, db)
    for table in parse_pipeline(SPEC, "shop.yaml").tables:
        create_projection_table(store, db, table)


def test_a_deployment_that_wrote_nothing_yet(store, db):
    assert written(store, db, TABLES) == {}  # not even a database
    end_offsets, seen = ends({0: 60, 1: 40})
    status = describe(store, record(db), end_offsets, SPECS)
    assert seen == ["shop_log"]
    assert msgspec.to_builtins(status) == {
        "name": db, "pipeline": "shop", "version": 1, "state": "running", "desired": "running",
        "stage": "", "error": None, "follow": False, "start": {0: 10, 1: 0},
        "stop": {0: 50, 1: 30}, "next": {0: 10, 1: 0}, "end": {0: 60, 1: 40},
        "lag": {0: 50, 1: 40}, "behind": None, "behind_s": None, "done": 0, "total": 70,
        "rows": {}, "processes": 1, "workers": 1,
    }  # fmt: skip
    create(store, db)  # tables, but no progress rows: still nothing written
    assert written(store, db, TABLES) == {}
    assert describe(store, record(db), end_offsets, SPECS).rows == {
        "orders": 0,
        "per_minute": 0,
    }


def test_progress_is_the_slowest_projection_per_partition(store, db):
    create(store, db)
    progress = progress_writer(store, db)
    record_progress(progress, "orders", {0: 29})
    record_progress(progress, "orders", {0: 25})  # an older row: the highest offset counts
    record_progress(progress, "per_minute", {0: 19})
    record_progress(progress, "orders", {1: 14})  # per_minute wrote nothing in partition 1 yet
    assert written(store, db, TABLES) == {0: 20, 1: 0}
    assert written(store, db, ["orders"]) == {0: 30, 1: 15}
    assert written(store, db, ["per_minute"]) == {0: 20, 1: 0}

    store.command(f"INSERT INTO `{db}`.orders (order_id, version) VALUES ('a', 1), ('b', 2)")
    end_offsets, _ = ends({0: 60, 1: 40})
    bounded = describe(store, record(db, error="", stage="green"), end_offsets, SPECS)
    assert bounded.next == {0: 20, 1: 0}
    assert bounded.lag == {0: 40, 1: 40}
    assert (bounded.done, bounded.total) == (10, 70)  # stop - start: (50-10) + (30-0)
    assert bounded.rows == {"orders": 2, "per_minute": 0}
    assert bounded.stage == "green" and bounded.follow is False

    following = describe(store, record(db, stop=None), end_offsets, SPECS)
    assert following.follow is True and following.stop is None
    assert (following.done, following.total) == (10, 90)  # to the log's end instead


def test_progress_past_the_stop_and_partitions_the_record_does_not_know(store, db):
    create(store, db)
    for projection in TABLES:
        record_progress(progress_writer(store, db), projection, {0: 59})
        record_progress(progress_writer(store, db), projection, {1: 5})
    end_offsets, _ = ends({0: 60, 1: 40, 2: 7})  # partition 2 was added to the topic later
    bounded = describe(store, record(db), end_offsets, SPECS)
    assert bounded.next == {0: 60, 1: 6, 2: 0}  # every partition of the topic counts
    assert bounded.lag == {0: 0, 1: 34, 2: 7}
    assert (bounded.done, bounded.total) == (40 + 6, 70)  # never more than the range
    following = describe(store, record(db, stop=None), end_offsets, SPECS)
    assert (following.done, following.total) == (50 + 6, 50 + 40 + 7)


def test_a_start_ahead_of_the_progress_counts_from_the_start(store, db):
    create(store, db)
    for projection in TABLES:
        # written before a replay --from 0:10
        record_progress(progress_writer(store, db), projection, {0: 3})
    end_offsets, _ = ends({0: 60, 1: 40})
    status = describe(store, record(db), end_offsets, SPECS)
    assert status.next == {0: 10, 1: 0}
    assert status.done == 0


def test_state_and_error_are_the_records(store, db):
    failed = record(db, state="failed", desired="stopped", error="boom: the sink refused")
    end_offsets, _ = ends({0: 60, 1: 40})
    status = describe(store, failed, end_offsets, SPECS)
    assert (status.state, status.desired) == ("failed", "stopped")
    assert status.error == "boom: the sink refused"
