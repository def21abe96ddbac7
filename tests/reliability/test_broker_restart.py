"""Stop the broker for ten seconds in the middle of the stream: the producer and the pipeline
retry, resume by themselves, and the projections equal the oracle."""

import threading
import time

import pytest
from prometheus_client import CollectorRegistry

from commands.log import CommandLog
from commands.producer import CommandProducer
from dataflows.metrics import Metrics
from deploy.broker import LocalBroker
from deploy.deployment import Deployment, DeploymentConfig
from deploy.model import State
from examples.orders.generator import OrderGenerator
from tests.conftest import distribution
from tests.oracles import ORDER_COLUMNS, diff_orders, expected_orders


@pytest.mark.slow  # starts and restarts a broker of its own
def test_the_pipeline_rides_out_a_broker_restart(tmp_path, orders_pipeline, store, store_dsn):
    broker = LocalBroker(tmp_path / "broker", distribution())
    bootstrap = broker.start().bootstrap
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
        time.sleep(3)

        broker.stop()
        time.sleep(10)
        broker.start()

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
    finally:
        broker.stop()
