"""What the runtime hands a cluster's child: the same configuration, through JSON."""

from datetime import timedelta
from pathlib import Path

from dataflows.source import StartAt
from dataflows.spec import load_pipeline
from deploy.cluster import free_ports, payload
from deploy.cluster_process import config_from
from deploy.deployment import DeploymentConfig
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


def test_free_ports_differ():
    ports = free_ports(4)
    assert len(set(ports)) == 4 and all(p > 0 for p in ports)
