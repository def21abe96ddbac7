"""What the runtime hands a cluster's child and a member on another host: the same
configuration, through JSON (less what the member's own host says); which processes write the
store; the addresses of a cluster across hosts, checked."""

import socket
from datetime import timedelta
from pathlib import Path

import pytest

from core.errors import ConfigError
from dataflows.source import StartAt
from dataflows.spec import load_pipeline
from deploy.cluster import (
    LOCAL_KEYS,
    Cluster,
    ClusterError,
    check_addresses,
    free_ports,
    payload,
    shared_payload,
)
from deploy.cluster_process import PORT_TAKEN
from deploy.deployment import DeploymentConfig
from deploy.member import config_from
from deploy.shares import writes_store
from tests.conftest import REPO


def test_a_child_builds_the_configuration_of_process_0():
    pipeline = load_pipeline(REPO / "examples" / "orders" / "specs" / "orders.yaml")
    config = DeploymentConfig(
        pipeline=pipeline, brokers="127.0.0.1:1", topic="t", clickhouse_dsn="chdb://x",
        recovery_root=Path("/r"), name="orders_v1", start=StartAt("offsets", offsets={0: 5}),
        stop_at={0: 9, 1: 3}, epoch=timedelta(seconds=2), skips={1: frozenset({2})},
        careful={0: 7}, processes=3, workers=2,
    )  # fmt: skip
    again = config_from(payload(config, [0, 1]))
    assert again.pipeline.spec == pipeline.spec
    assert [p.name for p in again.pipeline.projections] == ["orders", "revenue_per_minute"]
    for field in ("brokers", "topic", "recovery_root", "name", "start", "stop_at", "epoch",
                  "skips", "careful", "processes", "workers"):  # fmt: skip
        assert getattr(again, field) == getattr(config, field), field
    assert again.partitions == [0, 1]
    # a member on another host: no DSN (it may hold a password), broker or path of process 0's
    shared = shared_payload(payload(config, [0, 1]))
    assert not set(LOCAL_KEYS) & set(shared)
    mine = {"brokers": "b:2", "clickhouse_dsn": "chdb://m", "recovery_root": "/m"}
    member = config_from({**shared, **mine})
    assert (member.brokers, member.clickhouse_dsn, member.recovery_root) == ("b:2", "chdb://m",
                                                                             Path("/m"))  # fmt: skip
    assert (member.start, member.skips, member.careful) == (config.start, config.skips,
                                                            config.careful)  # fmt: skip


def test_with_a_server_every_process_writes_with_the_embedded_engine_process_0_alone():
    assert writes_store("chdb:///d/clickhouse", 0)
    assert not writes_store("chdb:///d/clickhouse", 1)
    assert writes_store("http://u:p@clickhouse:8123", 1)
    assert writes_store("https://clickhouse:8443", 7)


@pytest.mark.parametrize(
    ("addresses", "process_id", "says"),
    [
        ([], 0, "1 to 8"),
        ([f"h{i}:1" for i in range(9)], 0, "1 to 8"),
        (["h0:9000", "h1"], 0, "'h1' is not host:port"),
        (["h0:9000", ":9000"], 0, "':9000' is not host:port"),
        (["h0:9000", "h1:0"], 0, "'h1:0' is not host:port"),
        (["h0:9000", "h1:70000"], 0, "'h1:70000'"),
        (["h0:9000", "h 1:9000"], 0, "'h 1:9000'"),
        (["h0:9000", "h0:9000"], 0, "twice"),
        (["h0:9000", "h1:9000"], 2, "--process-id 2 is not a process of --addresses (0 to 1)"),
    ],
)
def test_addresses_bytewax_could_not_form_a_cluster_with_are_refused(addresses, process_id, says):
    with pytest.raises(ConfigError, match=r"--addresses|--process-id") as refused:
        check_addresses(addresses, process_id)
    assert says in str(refused.value)


def test_addresses_of_a_cluster_across_hosts():
    check_addresses(["cqrs-runtime-0.cqrs-runtime:9000", "10.0.0.2:9000", "[::1]:9000"], 2)


def test_free_ports_differ():
    ports = free_ports(4)
    assert len(set(ports)) == 4 and all(p > 0 for p in ports)


def test_a_child_whose_port_was_taken_fails_before_it_says_ready():
    """Past `ready`, process 0 would wait for it forever in Bytewax's connection setup."""
    pipeline = load_pipeline(REPO / "examples" / "orders" / "specs" / "orders.yaml")
    config = DeploymentConfig(
        pipeline=pipeline, brokers="127.0.0.1:1", topic="t", clickhouse_dsn="chdb://x",
        recovery_root=Path("/r"), name="orders_v1", processes=2,
    )  # fmt: skip
    cluster = Cluster("orders_v1", payload(config, [0]), 2, 1, lambda *report: None)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cluster.addresses[1] = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(ClusterError, match=f"exit code {PORT_TAKEN}"):
            cluster.start()
