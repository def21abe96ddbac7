"""Malformed records on the real log do not stop the pipeline: they are counted, and each one
reaches the DLQ with its raw bytes and its reason."""

import time

from kafka import KafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry

from commands.envelope import encode_command
from commands.generator import OrderGenerator
from commands.producer import CommandProducer
from deploy.deployment import State
from sinks.dlq import dlq_topic
from tests.oracles import expected_orders


def read_dlq(brokers, topic, expect):
    consumer = KafkaConsumer(bootstrap_servers=brokers, enable_auto_commit=False)
    tp = TopicPartition(dlq_topic(topic), 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    records, deadline = [], time.monotonic() + 30
    while len(records) < expect and time.monotonic() < deadline:
        records.extend(consumer.poll(timeout_ms=500).get(tp, []))
    consumer.close()
    return records


def test_malformed_records_are_rejected_and_the_rest_is_projected(
    brokers, make_topic, orders_pipeline, run_bounded, store
):
    topic = make_topic(partitions=3)
    good = OrderGenerator(seed=21).take(2000)
    paid = next(c for c in good if c.type == "order.paid")
    bad = {
        b"not json at all": "not_json",
        b"\xff\xfe\xfd": "not_utf8",
        b'{"id": "only an id"}': "wrong_shape",
        encode_command(paid).replace(b'"order.paid"', b'"order.refunded"'): "unknown_type",
        encode_command(paid).replace(paid.aggregate_id.encode(), b"o-never-placed"): (
            "invalid_transition"
        ),
    }
    with CommandProducer(brokers, topic) as producer:
        for i, command in enumerate(good):
            producer.send(command)
            if i % 400 == 0:
                raw = list(bad)[i // 400]
                producer.send_raw(b"bad-%d" % i, raw)
        producer.flush()
        assert producer.errors == 0

    registry = CollectorRegistry()
    deployment = run_bounded(orders_pipeline, topic, registry=registry)

    assert deployment.state is State.COMPLETED
    db = orders_pipeline.deployment
    (count,) = store.query(f"SELECT count() FROM `{db}`.orders FINAL").result_rows[0]
    assert count == len(expected_orders(good))

    dlq = read_dlq(brokers, topic, expect=len(bad))
    assert {r.value: dict(r.headers)["reason"].decode() for r in dlq} == bad
    headers = dict(dlq[0].headers)
    assert headers["deployment"].decode() == db
    assert headers["source.topic"].decode() == topic
    assert int(headers["source.offset"]) >= 0

    labels = {"pipeline": orders_pipeline.name, "version": "1", "deployment": db}
    rejected = sum(
        registry.get_sample_value(
            "cqrs_commands_rejected_total", {**labels, "step": s, "reason": r}
        )
        or 0
        for s, r in [
            ("decode", "not_json"),
            ("decode", "not_utf8"),
            ("decode", "wrong_shape"),
            ("validate", "unknown_type"),
            ("order_state", "invalid_transition"),
        ]
    )
    consumed = sum(
        registry.get_sample_value("cqrs_commands_consumed_total", {**labels, "partition": str(p)})
        for p in range(3)
    )
    written = registry.get_sample_value(
        "cqrs_projection_rows_written_total", {**labels, "projection": "orders"}
    )
    assert rejected == len(bad)
    assert consumed == len(good) + len(bad)
    assert written == len(good)  # every valid command updates its order's row
