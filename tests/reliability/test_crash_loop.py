"""SIGKILL the pipeline again and again while commands are produced: the projections still
equal the oracle computed from the log (zero missing, zero doubled), the progress reaches the
log's end, and nothing was sent to the DLQ."""

import json
import os
import random
import signal
import subprocess
import threading
import time

from commands.log import CommandLog
from commands.producer import CommandProducer
from dataflows.spec import load_pipeline
from deploy.runtime_file import find_runtime
from examples.orders.generator import OrderGenerator
from tests.conftest import REPO, ask_runtime
from tests.e2e.test_cli import CQRS, cqrs
from tests.oracles import (
    ORDER_COLUMNS,
    diff_orders,
    diff_windows,
    expected_orders,
    expected_revenue_per_minute,
)

SPEC = str(REPO / "examples" / "orders" / "specs" / "orders.yaml")


def query_rows(env, sql):
    doc = json.loads(cqrs(env, "query", sql, "--format", "json").stdout)
    return [dict(zip(doc["columns"], row, strict=True)) for row in doc["rows"]]


def test_crash_loop(tmp_path, brokers, unique):
    env = {
        **os.environ,
        "CQRS_BROKERS": brokers,
        "CQRS_DATA_DIR": str(tmp_path / "data"),
        "CQRS_TOPIC": f"crash_{unique}",
        "CQRS_HTTP_PORT": "0",
    }
    topic = env["CQRS_TOPIC"]
    with CommandLog(brokers, topic) as log:
        log.ensure(6)
    commands = OrderGenerator(seed=61, step_ms=20).take(200_000)
    produced = threading.Event()
    errors = []

    def feed():
        with CommandProducer(brokers, topic) as producer:
            for i, command in enumerate(commands):
                producer.send(command)
                if i % 2000 == 1999:
                    time.sleep(0.25)  # spread the load over the kills
            producer.flush()
            errors.append(producer.errors)
        produced.set()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    rng = random.Random(7)
    kills = 0

    def start():
        return subprocess.Popen(
            [CQRS, "--log-level", "WARNING", "run", SPEC],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

    def up(run):
        """Until the run's runtime serves (its deployment starts right after): on a busy
        machine that takes from one second to twenty, so the kill's random moment counts from
        there, not from the process start."""
        deadline = time.monotonic() + 120
        while (info := find_runtime(tmp_path / "data")) is None or info.pid != run.pid:
            assert run.poll() is None, run.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the run did not come up in 120 s"
            time.sleep(0.1)

    def written():
        """Progress rows so far, asked of the running run's runtime over its API from this
        process (a `cqrs query` process took 5-11 s on a busy machine); none before its first
        insert: the table may not exist yet."""
        sql = "SELECT count() AS n FROM orders_v1._progress"
        return ask_runtime(env, lambda api: api.query(sql).rows[0][0], 0)

    # ten kills at least, and until one has cut a run that had written (a starved machine may
    # take longer than the random moment to get a run to its first insert)
    run = start()
    wrote = False
    while kills < 10 or not produced.is_set() or not wrote:
        assert kills < 40, "no run got to its first insert before it was killed"
        up(run)
        time.sleep(rng.uniform(1.0, 4.0))
        wrote = wrote or written() > 0
        assert run.poll() is None, run.stderr.read().decode()[-3000:]
        run.send_signal(signal.SIGKILL)
        run.wait()
        kills += 1
        run = start()
    run.send_signal(signal.SIGKILL)
    run.wait()
    feeder.join()
    assert errors == [0]
    during = query_rows(env, "SELECT count() AS n FROM orders_v1._progress WHERE offset > 0")
    assert during[0]["n"] > 0, "the killed runs never wrote anything"

    done = cqrs(env, "run", SPEC, "--until-caught-up")
    assert "orders_v1 completed" in done.stderr

    rows = query_rows(env, f"SELECT {ORDER_COLUMNS} FROM orders_v1.orders FINAL")
    assert diff_orders(expected_orders(commands), rows) == []

    pipeline = load_pipeline(SPEC)
    revenue = next(p for p in pipeline.projections if p.name == "revenue_per_minute")
    windows = query_rows(env, revenue.projector.view("`orders_v1`.`revenue_per_minute`"))
    want = expected_revenue_per_minute(commands)
    assert diff_windows(want, windows, ("window_start", "region", "currency")) == []

    with CommandLog(brokers, topic) as log:
        ends = log.end_offsets()
    progress = query_rows(
        env,
        "SELECT projection, partition, max(offset) AS offset FROM orders_v1._progress "
        "GROUP BY projection, partition",
    )
    for row in progress:
        assert row["offset"] == ends[row["partition"]] - 1, row
    assert len(progress) == 2 * len(ends)
    assert cqrs(env, "dlq", "tail", "--json").stdout.strip() == ""
    assert kills >= 10
