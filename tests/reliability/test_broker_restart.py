"""Stop the broker for ten seconds in the middle of the stream: the producer and the pipeline
retry, resume by themselves, and the projections equal the oracle. A producer that kept sending
through the outage, with a delivery timeout shorter than it (so batches it had sent expire, as
an outage past kafka-python's default 120 s would), delivers again afterwards: that client
wedges, and `CommandProducer` replaces it."""

import threading
import time

import pytest
from prometheus_client import CollectorRegistry

from commands.log import CommandLog
from commands.producer import CommandProducer
from core.envelope import decode_command
from dataflows.metrics import Metrics
from deploy.deployment import Deployment, DeploymentConfig
from deploy.model import State
from examples.orders.generator import OrderGenerator
from tests.conftest import read_log
from tests.oracles import ORDER_COLUMNS, diff_orders, expected_orders


@pytest.mark.slow  # starts and restarts a broker of its own
def test_the_pipeline_rides_out_a_broker_restart(
    tmp_path, own_broker, orders_pipeline, store, store_dsn
):
    broker = own_broker
    bootstrap = broker.start().bootstrap
    trickle = None
    try:
        topic = "restart"
        with CommandLog(bootstrap, topic) as log:
            log.ensure(3)
        commands = OrderGenerator(seed=71).take(30_000)
        half = len(commands) // 2
        with CommandProducer(bootstrap, topic) as producer:
            for command in commands[:half]:
                producer.send(command)
            producer.flush()

        deployment = Deployment(
            DeploymentConfig(
                pipeline=orders_pipeline,
                brokers=bootstrap,
                topic=topic,
                clickhouse_dsn=store_dsn,
                recovery_root=tmp_path / "recovery",
            ),
            Metrics(CollectorRegistry()).for_deployment("orders", 1, orders_pipeline.deployment),
        )
        deployment.start(deployment.prepare(store))
        with CommandLog(bootstrap, "restart-trickle") as log:
            log.ensure(1)
        trickle = CommandProducer(
            bootstrap, "restart-trickle", delivery_timeout_ms=3000, request_timeout_ms=2500
        )
        trickling = threading.Event()
        trickled = threading.Thread(target=_trickle, args=(trickle, trickling), daemon=True)
        trickled.start()
        time.sleep(3)

        broker.stop()
        time.sleep(10)
        broker.start()
        trickling.set()
        trickled.join(30)

        errors = []

        def second_half():
            with CommandProducer(bootstrap, topic) as producer:
                for command in commands[half:]:
                    producer.send(command)
                producer.flush()
                errors.append(producer.errors)

        feeder = threading.Thread(target=second_half)
        feeder.start()
        feeder.join(120)
        assert errors == [0]

        db = orders_pipeline.deployment
        expected = expected_orders(commands)
        deadline = time.monotonic() + 120
        problems = ["not checked"]
        while time.monotonic() < deadline and problems:
            rows = list(
                store.query(f"SELECT {ORDER_COLUMNS} FROM `{db}`.orders FINAL").named_results()
            )
            problems = diff_orders(expected, rows)
            if problems:
                assert deployment.state is State.RUNNING, deployment.error
                time.sleep(1)
        assert problems == []
        deployment.stop()
        assert deployment.state is State.STOPPED

        assert trickle.errors > 0  # the outage expired records: the path that can wedge
        after = OrderGenerator(seed=72).take(100)
        acked = trickle.acked
        for command in after:
            trickle.send(command)
        trickle.flush(timeout_s=60)  # a wedged client never flushes
        assert trickle.acked == acked + 100, (trickle.acked, trickle.last_error)
        logged = {decode_command(r.value).id for r in read_log(bootstrap, "restart-trickle")}
        assert {c.id for c in after} <= logged
    finally:
        if trickle is not None:
            trickle.close()


def _trickle(producer: CommandProducer, stop: threading.Event) -> None:
    """Ten commands every 20 ms until `stop`: some are in flight when the broker goes."""
    commands = iter(OrderGenerator(seed=73))
    while not stop.wait(0.02):
        for _ in range(10):
            producer.send(next(commands))
