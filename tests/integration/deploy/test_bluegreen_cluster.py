"""Blue/green and replay unchanged when the deployments are Bytewax clusters, in one scenario
(a cluster's start is the costly part, so each one checks many things):

- blue, registered by `cqrs run` on one process, is run again on two: the new runtime starts it
  once, on the new shape, resumed from the snapshots of one process (no run on the old shape
  first), and the stable views equal the oracle;
- green runs as one process of two workers beside it while commands keep coming; promote,
  rollback and promote again never let a reader fail, see nothing, or see a mix; after the
  last promote the views equal v2's oracle;
- cleanup stops blue's cluster: its child process is gone;
- a replay on two processes into a new database equals v2's oracle, and leaves no child."""

import os
import threading
import time

import pytest

import deploy.runtime
from commands.producer import CommandProducer
from dataflows.spec import parse_pipeline
from deploy.deployment import Deployment
from deploy.model import ReplayRequest
from deploy.runtime import Runtime
from examples.orders.generator import OrderGenerator
from tests.conftest import produce
from tests.integration.deploy import test_bluegreen
from tests.integration.deploy.test_bluegreen import V1, V2, VIEWS, Readers, _count, _stops, named
from tests.integration.deploy.test_replay import check_v2, commands_in, end_offsets
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

#: commands before blue starts, and fed live (about 500/s) while blue and green run
BEFORE, LIVE = 6000, 5000
WINDOW_COLUMNS = ("window_start", "region", "currency", "paid_orders", "revenue", "revenue_usd")

# blue/green's own fixtures (a pipeline name, settings on a 3-partition topic of their own)
P = test_bluegreen.P
settings = test_bluegreen.settings


@pytest.fixture
def started(monkeypatch):
    """Every run the runtime starts: (deployment, processes, workers)."""
    runs: list[tuple[str, int, int]] = []

    class Counted(Deployment):
        def start(self, partitions: list[int]) -> None:
            runs.append((self.name, self.config.processes, self.config.workers))
            super().start(partitions)

    monkeypatch.setattr(deploy.runtime, "Deployment", Counted)
    return runs


def assert_views_equal_oracle(runtime, q, commands, usd_rates=None):
    names = [c.split(" AS ")[-1].strip() for c in ORDER_COLUMNS.split(", ")]
    rows = runtime.query(f"SELECT {ORDER_COLUMNS} FROM {q}.orders").rows
    assert (
        diff_orders(expected_orders(commands), [dict(zip(names, r, strict=True)) for r in rows])
        == []
    )
    columns = WINDOW_COLUMNS if usd_rates else WINDOW_COLUMNS[:-1]  # v1 has no fx filter
    rows = runtime.query(f"SELECT {', '.join(columns)} FROM {q}.revenue_per_minute").rows
    windows = [dict(zip(columns, r, strict=True)) for r in rows]
    want = expected_revenue_per_minute(commands, usd_rates=usd_rates)
    assert diff_windows(want, windows, ("window_start", "region", "currency")) == []


def gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")


def test_blue_green_and_replay_on_clusters(settings, brokers, store, P, started):
    q, topic = settings.query_database, settings.topic
    blue, green = f"{P}_v1", f"{P}_v2"
    generator = OrderGenerator(seed=111, step_ms=20)
    produce(brokers, topic, generator.take(BEFORE))
    v1_text = named(V1, P)
    v1 = parse_pipeline(v1_text, "v1.yaml")
    with Runtime(settings, brokers) as runtime:
        runtime.ensure(v1, v1_text)
        wait_for(lambda: runtime.get_deployment(blue).done >= BEFORE, timeout_s=120)
    assert started == [(blue, 1, 1)]

    later = generator.take(LIVE)
    stop_feeding = threading.Event()

    def feed():
        with CommandProducer(brokers, topic) as producer:
            for i, command in enumerate(later):
                if stop_feeding.is_set():
                    break
                producer.send(command)
                if i % 50 == 49:
                    producer.flush()
                    time.sleep(0.1)
            producer.flush()
            assert producer.errors == 0

    # `cqrs run --processes 2` on the deployment registered as 1x1
    with Runtime(settings, brokers, reserved={blue}) as runtime:
        runtime.ensure(v1, v1_text, processes=2)
        assert started == [(blue, 1, 1), (blue, 2, 1)], "not one start on the new shape"
        assert runtime.records.get(blue).processes == 2
        blue_run = runtime.deployments[blue]
        (blue_child,) = wait_for(lambda: blue_run.cluster and blue_run.cluster.pids)
        wait_for(lambda: sum(runtime.get_deployment(blue).lag.values()) == 0, timeout_s=120)
        wait_for(lambda: all(_count(runtime, q, view) > 0 for view in VIEWS))
        assert_views_equal_oracle(
            runtime, q, commands_in(brokers, topic, end_offsets(brokers, topic))
        )

        bg = runtime.bluegreen
        feeder = threading.Thread(target=feed)
        feeder.start()
        with Readers(runtime, q) as readers, _stops(stop_feeding, feeder):
            state = bg.init(named(V2, P), "v2.yaml", processes=1, workers=2)
            assert (state.active, state.green) == (blue, green)
            assert started[-1] == (green, 1, 2)
            bg.promote(P, wait_s=300)
            readers.wait_for_reads(green)
            bg.rollback(P)
            assert not gone(blue_child), "blue's cluster did not drain beside green"
            readers.wait_for_reads(blue)
            bg.promote(P, wait_s=300)
            readers.wait_for_reads(green)
        assert (readers.failures, readers.empty, readers.mixed) == ([], 0, 0)
        assert readers.seen[blue] > 0 and readers.seen[green] > 0
        assert [name for name, *_ in started].count(blue) == 2  # rollback left blue running

        ends = end_offsets(brokers, topic)
        kept = without_test_customers(commands_in(brokers, topic, ends))
        wait_for(lambda: sum(runtime.get_deployment(green).lag.values()) == 0, timeout_s=120)
        assert_views_equal_oracle(runtime, q, kept, usd_rates=USD_RATES)

        state = bg.cleanup(P)
        assert (state.active, state.draining) == (green, None)
        assert blue_run.join(0) is True and blue not in runtime.deployments
        wait_for(lambda: gone(blue_child), timeout_s=30)

        # `cqrs replay --processes 2` of v2 from the earliest offset into a new database
        into = f"r{P}"
        status = runtime.replay(
            ReplayRequest(named(V2, P), "v2.yaml", start="earliest", into=into, processes=2)
        )
        assert (status.processes, status.workers) == (2, 1)
        replay = runtime.deployments[into]
        (replay_child,) = wait_for(lambda: replay.cluster and replay.cluster.pids, timeout_s=120)
        wait_for(lambda: runtime.get_deployment(into).state == "completed", timeout_s=300)
        replayed = commands_in(brokers, topic, runtime.records.get(into).stop)
        check_v2(store, parse_pipeline(named(V2, P), "v2.yaml"), into, replayed)
        assert gone(replay_child)
