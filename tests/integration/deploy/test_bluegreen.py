"""Blue/green on the real broker and ClickHouse engine: v1 serves while v2 catches up, one
switch moves every view, queries never fail or see a mix, rollback and cleanup work, and every
step finishes the job when run again after a crash."""

import contextlib
import threading
import time
from collections import Counter

import pytest

from commands.producer import CommandProducer
from core.errors import ConfigError
from dataflows.spec import parse_pipeline
from deploy.model import MAX_BEHIND_S
from deploy.runtime import Runtime
from deploy.settings import Settings
from deploy.stable import StableLayer
from examples.orders.generator import OrderGenerator
from tests.conftest import REPO, produce
from tests.integration.deploy.test_replay import commands_in, end_offsets
from tests.integration.deploy.test_runtime import wait_for
from tests.oracles import (
    ORDER_COLUMNS,
    USD_RATES,
    diff_orders,
    diff_windows,
    expected_orders,
    expected_revenue_per_minute,
    without_test_customers,
)

V1 = REPO / "examples" / "orders" / "specs" / "orders.yaml"
V2 = REPO / "examples" / "orders" / "specs" / "orders_v2.yaml"
VIEWS = ("orders", "revenue_per_minute")
MIXED = (
    "SELECT (SELECT any(_deployment) FROM {q}.orders) AS a, "
    "(SELECT any(_deployment) FROM {q}.revenue_per_minute) AS b"
)


@pytest.fixture
def P(unique):
    return f"p{unique}"


@pytest.fixture
def settings(tmp_path, brokers, store_dsn, unique, make_topic):
    return Settings(
        data_dir=tmp_path / "data",
        brokers=brokers,
        clickhouse=store_dsn,
        http_port=0,
        topic=make_topic(partitions=3),
        query_database=f"q_{unique}",
        control_database=f"c_{unique}",
    )


def _count(runtime, q, view):
    return runtime.query(f"SELECT count() FROM {q}.{view}").rows[0][0]


class Readers:
    """Threads reading every stable view, and a query joining two, in a loop."""

    def __init__(self, runtime, q):
        self.runtime, self.q = runtime, q
        self.failures: list[str] = []
        self.empty = 0
        self.seen: Counter = Counter()
        self.mixed = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(2)]

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def wait_for_reads(self, deployment, reads=5):
        """Until the readers have read `deployment` a few more times (not a fixed sleep)."""
        before = self.seen[deployment]
        wait_for(lambda: self.seen[deployment] >= before + reads or self.failures, timeout_s=60)

    def _loop(self):
        while not self._stop.is_set():
            try:
                for view in VIEWS:
                    rows = self.runtime.query(f"SELECT count() FROM {self.q}.{view}").rows
                    if not rows or rows[0][0] == 0:
                        self.empty += 1
                ((a, b),) = self.runtime.query(MIXED.format(q=self.q)).rows
                self.seen[a] += 1
                if a != b:
                    self.mixed += 1
            except Exception as exc:  # every failure is a finding
                self.failures.append(repr(exc))


def test_blue_green_lifecycle(settings, brokers, store, P):
    q, topic = settings.query_database, settings.topic
    generator = OrderGenerator(seed=101, step_ms=20)
    produce(brokers, topic, generator.take(30_000))
    stop_feeding = threading.Event()
    sent_per_tick: list[int] = []

    def feed():
        with CommandProducer(brokers, topic) as producer:
            while not stop_feeding.is_set():
                for command in generator.take(200):
                    producer.send(command)
                producer.flush()
                sent_per_tick.append(producer.acked)
                time.sleep(0.1)
            assert producer.errors == 0

    with Runtime(settings, brokers) as runtime:
        runtime.ensure(parse_pipeline(named(V1, P), "v1.yaml"), named(V1, P))
        bg = runtime.bluegreen
        assert bg.state(P).active == f"{P}_v1"
        wait_for(lambda: runtime.get_deployment(f"{P}_v1").done >= 30_000)
        # a window's rows are written after the orders' (when it closes, then on the sink's
        # flush): the readers count emptiness from the moment every view has rows
        wait_for(lambda: all(_count(runtime, q, view) > 0 for view in VIEWS))
        feeder = threading.Thread(target=feed)
        feeder.start()
        with Readers(runtime, q) as readers, _stops(stop_feeding, feeder):
            state = bg.init(named(V2, P), "v2.yaml")
            assert (state.active, state.green) == (f"{P}_v1", f"{P}_v2")
            with pytest.raises(ConfigError, match=f"{P}_v2 is already in flight"):
                bg.init(named(V2, P).replace("version: 2", "version: 3"), "v3.yaml")
            with pytest.raises(ConfigError, match="behind the head of the log"):
                bg.promote(P, max_behind_s=0)  # green has a backlog of 30,000 to go
            # a gate of an hour stands for a log younger than the gate (a run fast enough to
            # promote within 5 s of loading the backlog): green passes it having written
            # nothing, and promote must still wait until green has written what v1 serves, or
            # the readers count empty views. The feeder never stops: the wait is not one sample
            bg.promote(P, max_behind_s=3600, wait_s=300)
            assert bg.promote(P).active == f"{P}_v2"  # a re-run changes nothing
            readers.wait_for_reads(f"{P}_v2")
            bg.rollback(P)
            readers.wait_for_reads(f"{P}_v1")
            bg.promote(P, wait_s=300)
            readers.wait_for_reads(f"{P}_v2")
        assert readers.failures == []
        assert readers.empty == 0
        assert readers.mixed == 0
        assert readers.seen[f"{P}_v1"] > 0 and readers.seen[f"{P}_v2"] > 0

        # after promote the views answer with v2's filters, equal to the batch recomputation
        state = bg.state(P)
        assert (state.pointer, state.draining) == (f"{P}_v2", f"{P}_v1")
        ends = end_offsets(brokers, topic)
        kept = without_test_customers(commands_in(brokers, topic, ends))
        wait_for(lambda: sum(runtime.get_deployment(f"{P}_v2").lag.values()) == 0, timeout_s=120)
        rows = [
            dict(
                zip(
                    [c.split(" AS ")[-1].strip() for c in ORDER_COLUMNS.split(", ")], r, strict=True
                )
            )
            for r in runtime.query(f"SELECT {ORDER_COLUMNS} FROM {q}.orders").rows
        ]
        assert diff_orders(expected_orders(kept), rows) == []
        assert not any(r["customer_id"].startswith("test-") for r in rows)
        windows = [
            dict(
                zip(
                    ["window_start", "region", "currency", "paid_orders", "revenue", "revenue_usd"],
                    r,
                    strict=True,
                )
            )
            for r in runtime.query(
                f"SELECT window_start, region, currency, paid_orders, revenue, revenue_usd FROM {q}.revenue_per_minute"
            ).rows
        ]
        want = expected_revenue_per_minute(kept, usd_rates=USD_RATES)
        assert diff_windows(want, windows, ("window_start", "region", "currency")) == []
        assert runtime.query(f"SELECT count() FROM {q}.top_skus_5m").rows[0][0] > 0

        bg.cleanup(P)
        state = bg.state(P)
        assert (state.active, state.draining) == (f"{P}_v2", None)
        assert not int(store.command(f"SELECT count() FROM system.databases WHERE name = '{P}_v1'"))
        history = bg.history(P)
        assert history.versions[1].changes[:2] == [
            "filter added: drop_test_customers",
            "filter added: fx",
        ]
        assert "projection added: top_skus_5m" in history.versions[1].changes
        events = [(e.name, e.event) for e in history.events]
        assert (f"{P}_v2", "promoted") in events and (f"{P}_v1", "rolled back") in events
        assert (f"{P}_v1", "retired") in events


@contextlib.contextmanager
def _stops(event, thread):
    try:
        yield
    finally:
        event.set()
        thread.join()


def named(path, name):
    """A shipped spec under another pipeline name: databases of its own in the shared store."""
    return path.read_text().replace("name: orders\n", f"name: {name}\n", 1)


def test_a_promote_cut_short_is_finished_by_running_it_again(settings, brokers, store, P):
    q = settings.query_database
    produce(brokers, settings.topic, OrderGenerator(seed=102).take(3000))
    with Runtime(settings, brokers) as runtime:
        runtime.ensure(parse_pipeline(named(V1, P), "v1.yaml"), named(V1, P))
        bg = runtime.bluegreen
        bg.init(named(V2, P), "v2.yaml")
        wait_for(lambda: bg.state(P).green_behind_s == 0, timeout_s=120)
        StableLayer(store, settings.control_database, q).switch(
            P, f"{P}_v2"
        )  # the crash: the pointer moved, nothing else
    with Runtime(settings, brokers) as runtime:  # a new runtime, the step run again
        bg = runtime.bluegreen
        state = bg.promote(P)
        assert (state.pointer, state.active, state.draining) == (
            f"{P}_v2",
            f"{P}_v2",
            f"{P}_v1",
        )
        views = [r[0] for r in runtime.query(f"SHOW TABLES FROM {q}").rows]
        assert sorted(views) == ["orders", "revenue_per_minute", "top_skus_5m"]
        for view in views:
            assert runtime.query(f"SELECT DISTINCT _deployment FROM {q}.{view}").rows == [
                [f"{P}_v2"]
            ]
        active = [r.name for r in runtime.records.all() if r.stage == "active"]
        assert active == [f"{P}_v2"]
        with pytest.raises(ConfigError, match="no deployment in flight to abort"):
            bg.abort(P)


def test_an_abort_after_a_rollback_takes_the_views_only_green_had(settings, brokers, P):
    """v2 adds top_skus_5m: promoted, rolled back, then aborted, its view must go with its
    database rather than point at a database that is dropped."""
    q = settings.query_database
    produce(brokers, settings.topic, OrderGenerator(seed=103).take(500))
    with Runtime(settings, brokers) as runtime:
        runtime.ensure(parse_pipeline(named(V1, P), "v1.yaml"), named(V1, P))
        bg = runtime.bluegreen
        bg.init(named(V2, P), "v2.yaml")
        bg.promote(P, force=True)
        bg.rollback(P)
        state = bg.abort(P)
        assert (state.active, state.green, state.draining) == (f"{P}_v1", None, None)
        views = sorted(r[0] for r in runtime.query(f"SHOW TABLES FROM {q}").rows)
        assert views == ["orders", "revenue_per_minute"]
        for view in views:
            assert runtime.query(f"SELECT DISTINCT _deployment FROM {q}.{view}").rows in (
                [[f"{P}_v1"]],
                [],
            )


def test_promote_gates_on_time_where_a_count_refused(settings, brokers, P):
    """Under a steady producer a green that keeps up is always some commands behind: here more
    than the 1,000 the old count gate allowed (its sinks flush every 2 s), while the oldest
    command it has not applied stays within the time gate. Promote goes through."""
    green = named(V1, P).replace("version: 1", "version: 2")
    green = green.replace("    steps:", "    sink: {max_delay_ms: 2000}\n    steps:")
    generator = OrderGenerator(seed=103, step_ms=20)
    produce(brokers, settings.topic, generator.take(2000))
    stop = threading.Event()

    def feed():  # about 1,500 commands/s
        with CommandProducer(brokers, settings.topic) as producer:
            while not stop.is_set():
                for command in generator.take(150):
                    producer.send(command)
                producer.flush()
                time.sleep(0.1)

    feeder = threading.Thread(target=feed)
    with Runtime(settings, brokers) as runtime, _stops(stop, feeder):
        runtime.ensure(parse_pipeline(named(V1, P), "v1.yaml"), named(V1, P))
        feeder.start()
        bg = runtime.bluegreen
        bg.init(green, "v2.yaml")

        def counted_out_but_in_time():
            state = bg.state(P)
            late = state.green_behind_s
            return state.green_lag > 1000 and late is not None and late <= MAX_BEHIND_S

        wait_for(counted_out_but_in_time, timeout_s=120)
        state = bg.promote(P, wait_s=120)
        assert (state.active, state.draining) == (f"{P}_v2", f"{P}_v1")
        events = bg.history(P).events
        (promoted,) = [e for e in events if (e.name, e.event) == (f"{P}_v2", "promoted")]
        assert "behind the head of the log" in promoted.detail, promoted
