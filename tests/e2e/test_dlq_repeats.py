"""A runtime killed with SIGKILL redoes the epoch it was in, rejects included, so the DLQ holds
repeats: `cqrs dlq tail` shows each rejection once, `--all` every record, and `dlq replay`
puts each back once."""

import json
import signal
import subprocess
import time

from kafka import KafkaConsumer, TopicPartition

from commands.producer import CommandProducer
from examples.orders.generator import OrderGenerator
from tests.conftest import REPO
from tests.e2e.test_cli import CQRS, cqrs

SPEC = str(REPO / "examples" / "orders" / "specs" / "orders.yaml")
BAD = 10


def dlq_end(brokers, topic):
    consumer = KafkaConsumer(bootstrap_servers=brokers, enable_auto_commit=False)
    tp = TopicPartition(f"{topic}.dlq", 0)
    try:
        return consumer.end_offsets([tp])[tp]
    finally:
        consumer.close()


def test_each_rejection_once_after_five_kill_9s(env):
    brokers, topic = env["CQRS_BROKERS"], env["CQRS_TOPIC"]
    cqrs(env, "topic", "create", "--partitions", "2")
    with CommandProducer(brokers, topic) as producer:
        for i in range(BAD):
            producer.send_raw(f"bad-{i}".encode(), b"not json %d" % i)
        for command in OrderGenerator(seed=101).take(2000):
            producer.send(command)
        producer.flush()
        assert producer.errors == 0

    for _ in range(5):
        before = dlq_end(brokers, topic)
        run = subprocess.Popen(
            [CQRS, "--log-level", "WARNING", "run", SPEC],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        # Killed as soon as it has written its rejects (before its first snapshot, if the
        # machine allows): the next run redoes them. A run that resumed past them writes none.
        deadline = time.monotonic() + 20
        while dlq_end(brokers, topic) == before and time.monotonic() < deadline:
            time.sleep(0.1)
        run.send_signal(signal.SIGKILL)
        run.wait()
    assert "orders_v1 completed" in cqrs(env, "run", SPEC, "--until-caught-up").stderr

    total = dlq_end(brokers, topic)
    once = [json.loads(line) for line in cqrs(env, "dlq", "tail", "--json").stdout.splitlines()]
    every = cqrs(env, "dlq", "tail", "--json", "--all").stdout.splitlines()
    assert sorted(d["value"] for d in once) == sorted(f"not json {i}" for i in range(BAD))
    assert len(every) == total
    assert total > BAD, "no run was killed before its snapshot: nothing repeated"
    replayed = cqrs(env, "dlq", "replay", "--all", "--dry-run").stderr
    assert replayed.count("would replay") == BAD
