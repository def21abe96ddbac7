"""`cqrs broker` and `cqrs demo` as a user without a broker of their own runs them: the local
broker of a data dir is started, found, stopped and started again from the cache with its log
kept; the demo runs on it and leaves it running, since it did not start it."""

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from commands.log import CommandLog
from commands.producer import CommandProducer
from deploy.runtime_file import find_runtime
from deploy.settings import Settings
from deploy.token import read_token
from examples.orders.dashboard import PANELS
from tests.conftest import REPO, ask_runtime
from tests.e2e.test_cli import CQRS, cqrs


@pytest.fixture
def local_env(tmp_path, unique):
    """No CQRS_BROKERS: the CLI uses the local broker of its data dir."""
    cache = Settings.from_env().cache_dir
    env = {k: v for k, v in os.environ.items() if k != "CQRS_BROKERS"}
    return {
        **env,
        "CQRS_DATA_DIR": str(tmp_path / "data"),
        "CQRS_CACHE_DIR": str(cache if cache.is_absolute() else REPO / cache),
        "CQRS_TOPIC": f"demo_{unique}",
        "CQRS_HTTP_PORT": "0",
    }


def consume_all(bootstrap, topic, partitions=1):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning()
    values, deadline = [], time.monotonic() + 30
    while time.monotonic() < deadline:
        batch = consumer.poll(timeout_ms=500)
        values.extend(m.value for msgs in batch.values() for m in msgs)
        if batch == {} and values:
            break
    consumer.close()
    return values


def running_pid(env, bootstrap):
    found = re.fullmatch(
        rf"running on {re.escape(bootstrap)} \(pid (\d+)\)",
        cqrs(env, "broker", "status").stdout.strip(),
    )
    assert found, "broker status does not say it runs on " + bootstrap
    return int(found.group(1))


def shown_orders(env):
    """The rows of the demo's stable view, asked of its runtime's API from this process (0 before
    it serves them): a `cqrs query` a poll would take a second of the CPU the demo needs."""
    return ask_runtime(env, lambda api: api.query("SELECT count() FROM query.orders").rows[0][0], 0)


def run_the_demo(env, bootstrap):
    """Until the demo's runtime serves orders in the stable view it fills; then Ctrl-C."""
    demo = subprocess.Popen(
        [CQRS, "--log-level", "WARNING", "demo", "--rate", "300", "--seed", "3"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            assert demo.poll() is None, demo.communicate()
            assert time.monotonic() < deadline, "the demo showed no orders"
            if shown_orders(env) > 0:
                break
            time.sleep(0.5)
        # the built-in dashboard draws the orders demo's panels, though no CQRS_PANELS was set
        data_dir = Path(env["CQRS_DATA_DIR"])
        request = urllib.request.Request(find_runtime(data_dir).url + "/dashboard/data")
        request.add_header("Authorization", f"Bearer {read_token(data_dir / 'token')}")
        drawn = json.loads(urllib.request.urlopen(request, timeout=30).read())["panels"]
        assert [p["key"] for p in drawn] == [p.key for p in PANELS.panels]
    finally:
        demo.send_signal(signal.SIGTERM)
        out, err = demo.communicate(timeout=60)
    assert demo.returncode == 0, err
    assert f"broker {bootstrap}" in err and "orders_v1 running" in err
    assert "orders by status" in out and "produced" in out


@pytest.mark.slow  # starts a broker of its own, twice
def test_broker_start_stop_start_again_and_the_demo_on_it(local_env):
    env = local_env
    stopped = cqrs(env, "broker", "status", check=False)
    assert (stopped.returncode, stopped.stdout.strip()) == (1, "stopped")

    first = cqrs(env, "broker", "start")
    bootstrap = first.stdout.strip()
    try:
        assert re.fullmatch(r"127\.0\.0\.1:\d+", bootstrap), first.stdout
        assert f"broker up on {bootstrap} (pid " in first.stderr
        first_pid = running_pid(env, bootstrap)
        assert cqrs(env, "broker", "start").stdout.strip() == bootstrap  # found, not started twice
        with CommandLog(bootstrap, "launcher_check") as log:
            assert log.ensure(partitions=1) == 1
        with CommandProducer(bootstrap, "launcher_check") as producer:
            for i in range(100):
                producer.send_raw(b"k", f"v{i}".encode())
            producer.flush()
            assert producer.acked == 100
        assert consume_all(bootstrap, "launcher_check") == [f"v{i}".encode() for i in range(100)]
    finally:
        stopping = cqrs(env, "broker", "stop")
    assert "broker stopped" in stopping.stderr
    assert cqrs(env, "broker", "status", check=False).returncode == 1
    assert "no local broker was running" in cqrs(env, "broker", "stop").stderr

    started = time.monotonic()
    second = cqrs(env, "broker", "start")  # jars from the cache, storage kept
    took = time.monotonic() - started
    try:
        assert "fetching" not in second.stderr
        assert second.stdout.strip() == bootstrap  # the same port as before
        assert running_pid(env, bootstrap) != first_pid
        assert took < 60, f"a cached start took {took:.1f}s"
        # The log is the system of record: it survived the restart.
        assert len(consume_all(bootstrap, "launcher_check")) == 100
        run_the_demo(env, bootstrap)
        assert running_pid(env, bootstrap) != first_pid  # the demo left it running
    finally:
        assert "broker stopped" in cqrs(env, "broker", "stop").stderr
