"""One deployment's Bytewax cluster across two "hosts" on loopback, as a user runs it: process 0
is `cqrs run SPEC --addresses a,b --process-id 0` on its data dir (the runtime: API, registry,
the embedded store), process 1 the same command with `--process-id 1` on another data dir, as
another host would be, taking its run from process 0's API. The orders equal the oracle, status
shows the shape and what each process reads, process 0's metrics count every partition; a
member killed by SIGKILL brings the cluster down, and it comes back, exact, once the member is
started again; SIGTERM to both ends both cleanly.
"""

import re
import secrets
import signal
import subprocess
import time

import msgspec

from commands.log import CommandLog
from core.errors import CqrsError
from deploy.client import RuntimeClient, call
from deploy.cluster import free_ports
from examples.orders.generator import OrderGenerator
from tests.conftest import produce
from tests.e2e.test_cli import CQRS
from tests.e2e.test_cluster import SPEC, caught_up
from tests.oracles import ORDER_COLUMNS, diff_orders, expected_orders


def test_a_cluster_across_two_hosts_equals_the_oracle_survives_a_killed_member_and_stops(
    env, brokers, tmp_path
):
    topic = env["CQRS_TOPIC"]
    with CommandLog(brokers, topic) as log:
        log.ensure(4)
    generator = OrderGenerator(seed=16, step_ms=20)
    commands = generator.take(4_000)
    produce(brokers, topic, commands)
    api, zero, one = free_ports(3)
    addresses = f"127.0.0.1:{zero},127.0.0.1:{one}"
    env = {**env, "CQRS_HTTP_PORT": str(api), "CQRS_TOKEN": secrets.token_urlsafe(16)}
    other = {**env, "CQRS_DATA_DIR": str(tmp_path / "other-host")}
    # process 0's API, asked directly (a `cqrs status` per poll costs a second of CPU here)
    api_client = RuntimeClient(f"http://127.0.0.1:{api}", env["CQRS_TOKEN"], timeout_s=10)

    def wait_for(check, what, timeout_s=180):
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                found = msgspec.to_builtins(api_client.get_deployment("orders_v1"))
            except CqrsError:
                found = None  # not serving, or not registered, yet
            if found is not None and check(found):
                return found
            assert time.monotonic() < deadline, f"{what} not within {timeout_s}s: {found}"
            time.sleep(0.3)

    def consumed_per_partition():
        text = call(api_client.url, api_client.token, "GET", "/metrics").decode()
        found = re.finditer(
            r'cqrs_commands_consumed_total\{[^}]*partition="(\d+)"[^}]*\} (\S+)', text
        )
        return {int(m.group(1)): float(m.group(2)) for m in found}

    def orders():
        done = api_client.query(f"SELECT {ORDER_COLUMNS} FROM orders_v1.orders FINAL")
        return [dict(zip(done.columns, row, strict=True)) for row in done.rows]

    def start(process_id, on):
        return subprocess.Popen(
            [CQRS, "--log-level", "WARNING", "run", SPEC, "--addresses", addresses,
             "--process-id", str(process_id)],
            env=on, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    runtime, member = start(0, env), start(1, other)
    try:
        first = wait_for(lambda s: caught_up(s) and _both_read(s), "the cluster's run")
        assert (first["processes"], first["workers"]) == (2, 1)
        reads_zero, reads_one = (p["partitions"] for p in first["cluster"])
        assert sorted(reads_zero + reads_one) == [0, 1, 2, 3]
        assert first["cluster"][1]["pid"] == member.pid
        assert diff_orders(expected_orders(commands), orders()) == []
        assert not (tmp_path / "other-host" / "clickhouse").exists()  # the store is process 0's
        # process 0's metrics count the member's partitions too (its reports ride on its asks)
        deadline = time.monotonic() + 60
        while sum((consumed := consumed_per_partition()).values()) < len(commands):
            assert time.monotonic() < deadline, consumed
            time.sleep(0.3)
        assert all(consumed.get(p, 0) > 0 for p in reads_one), (reads_one, consumed)

        member.send_signal(signal.SIGKILL)
        member.wait()
        more = generator.take(1_000)
        produce(brokers, topic, more)
        commands += more
        member = start(1, other)
        again = wait_for(
            lambda s: caught_up(s) and _both_read(s) and s["cluster"][1]["pid"] == member.pid,
            "the cluster back with the member started again",
        )
        assert again["next"] == again["end"]
        assert diff_orders(expected_orders(commands), orders()) == []

        runtime.send_signal(signal.SIGTERM)
        member.send_signal(signal.SIGTERM)
        out, err = runtime.communicate(timeout=90)
        assert runtime.returncode == 0, err
        assert "orders_v1 stopped" in out + err, err
        out, err = member.communicate(timeout=90)
        assert member.returncode == 0, err
        assert "process 1 stopped" in out + err, err
    finally:
        for process in (runtime, member):
            if process.poll() is None:
                process.kill()
                process.wait()


def _both_read(found):
    cluster = found.get("cluster", [])
    return len(cluster) == 2 and all(p["partitions"] for p in cluster)
