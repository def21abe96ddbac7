"""Clients nobody here wrote: kcat (librdkafka) writes commands with every codec Kafka has and
with headers, and the projections equal those of the project's own producer; a producer that
forges its records' CreateTime cannot date commands past the broker's clock, nor stall a
window with a command dated ahead."""

import subprocess
import time
import uuid

import msgspec
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from commands.log import CommandLog
from core.envelope import encode_command
from dataflows.spec import load_pipeline
from deploy.deployment import State
from examples.orders.generator import OrderGenerator
from sinks.ddl import qualified
from tests.conftest import REPO, produce, renamed
from tests.integration.dataflows.test_bad_input import read_dlq
from tests.oracles import (
    ORDER_COLUMNS,
    diff_orders,
    diff_windows,
    expected_orders,
    expected_revenue_per_minute,
)

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
WINDOW_KEYS = ("window_start", "region", "currency")


def projections(store, pipeline):
    db = pipeline.deployment
    orders = store.query(f"SELECT {ORDER_COLUMNS} FROM `{db}`.orders FINAL").named_results()
    revenue = pipeline.projections[1]
    view = revenue.projector.view(qualified(db, revenue.output.table.name))
    return list(orders), list(store.query(view).named_results())


def orders_pipeline(name):
    return renamed(load_pipeline(REPO / "examples" / "orders" / "specs" / "orders.yaml"), name)


def test_kcat_with_every_codec_and_headers_projects_like_our_producer(brokers, run_bounded, store):
    tag = uuid.uuid4().hex[:8]
    commands = OrderGenerator(seed=81, step_ms=50).take(2500)
    ours, theirs = f"ours_{tag}", f"kcat_{tag}"
    for topic in (ours, theirs):
        with CommandLog(brokers, topic) as log:
            log.ensure(3)
    produce(brokers, ours, commands)
    chunk = -(-len(commands) // len(CODECS))
    for i, codec in enumerate(CODECS):
        lines = "".join(
            f"{c.aggregate_id}\t{encode_command(c).decode()}\n"
            for c in commands[i * chunk : (i + 1) * chunk]
        )
        subprocess.run(
            ["kcat", "-b", brokers, "-t", theirs, "-P", "-K", "\t", "-z", codec,
             "-X", "partitioner=murmur2_random", "-H", f"codec={codec}", "-H", "via=kcat ü"],
            input=lines.encode(), check=True, timeout=60,
        )  # fmt: skip

    # kcat really compressed: the batches on the log say so (kafka-python reads them back)
    consumer = KafkaConsumer(bootstrap_servers=brokers, enable_auto_commit=False)
    tps = [TopicPartition(theirs, p) for p in range(3)]
    consumer.assign(tps)
    consumer.seek_to_beginning()
    seen = []
    while len(seen) < len(commands):
        for records in consumer.poll(timeout_ms=1000).values():
            seen.extend(records)
    consumer.close()
    assert {dict(r.headers)["codec"] for r in seen} == {c.encode() for c in CODECS}
    assert {dict(r.headers)["via"] for r in seen} == {"kcat ü".encode()}

    results = []
    for topic in (ours, theirs):
        pipeline = orders_pipeline(f"{topic}_p")
        assert run_bounded(pipeline, topic).state is State.COMPLETED
        results.append(projections(store, pipeline))
    (our_orders, our_windows), (their_orders, their_windows) = results
    assert diff_orders(expected_orders(commands), their_orders) == []
    assert diff_orders(expected_orders(commands), our_orders) == []
    want = expected_revenue_per_minute(commands)
    assert diff_windows(want, their_windows, WINDOW_KEYS) == []
    assert diff_windows(want, our_windows, WINDOW_KEYS) == []
    assert read_dlq(brokers, theirs, expect=1, wait_s=2) == []


def test_forged_create_times_cannot_stall_a_window(brokers, run_bounded, store):
    tag = uuid.uuid4().hex[:8]
    topic = f"forged_{tag}"
    with CommandLog(brokers, topic) as log:
        log.ensure(2)
    now = int(time.time() * 1000)
    # honest event times: the last few seconds, as a live producer stamps them
    commands = OrderGenerator(seed=82, start_ms=now - 5000, step_ms=4).take(1500)
    # One payment dated 50 minutes ahead: validate's max_future (1h) lets it through, and
    # before, its window's watermark jumped with it and every later payment was late.
    i = next(i for i, c in enumerate(commands) if c.type == "order.paid" and i > 300)
    commands[i] = msgspec.structs.replace(commands[i], ts=now + 50 * 60_000)
    # And one dated 2h10m ahead, whose producer also forged its CreateTime (2h ahead): log time
    # is the broker's, so it is 2h10m ahead of the log and refused.
    last = commands[-1]
    ahead = msgspec.structs.replace(last, id="ahead", ts=now + 130 * 60_000)
    producer = KafkaProducer(bootstrap_servers=brokers, acks="all")
    for command in [*commands, ahead]:
        producer.send(topic, key=command.aggregate_id.encode(), value=encode_command(command),
                      timestamp_ms=now + 2 * 3_600_000)  # fmt: skip
    producer.flush()
    producer.close()

    pipeline = orders_pipeline(f"forged_{tag}")
    assert run_bounded(pipeline, topic).state is State.COMPLETED
    dlq = read_dlq(brokers, topic, expect=2, wait_s=5)
    assert [(r.key, dict(r.headers)["reason"]) for r in dlq] == [
        (ahead.aggregate_id.encode(), b"future_time")
    ]
    assert all(int(dict(r.headers)["source.timestamp"]) < now + 600_000 for r in dlq)
    orders, windows = projections(store, pipeline)
    assert diff_orders(expected_orders(commands), orders) == []
    want = expected_revenue_per_minute(commands)  # no payment late, the one ahead in its window
    assert diff_windows(want, windows, WINDOW_KEYS) == []
