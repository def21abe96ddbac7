"""The bad-input catalog on the real log: the pipeline keeps running, every good command is in
the projections, every bad one is in the DLQ with its reason, and the counts add up."""

import time

import msgspec
from kafka import KafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry

from commands.producer import CommandProducer
from core.envelope import encode_command
from deploy.deployment import State
from examples.orders.generator import OrderGenerator
from sinks.ddl import qualified
from sinks.dlq import dlq_topic
from tests.oracles import (
    ORDER_COLUMNS,
    diff_orders,
    diff_windows,
    expected_orders,
    expected_revenue_per_minute,
)


def read_dlq(brokers, topic, expect, wait_s=30):
    consumer = KafkaConsumer(
        bootstrap_servers=brokers,
        enable_auto_commit=False,
        max_partition_fetch_bytes=32 * 1024 * 1024,
    )
    tp = TopicPartition(dlq_topic(topic), 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    records, deadline = [], time.monotonic() + wait_s
    while len(records) < expect and time.monotonic() < deadline:
        records.extend(consumer.poll(timeout_ms=500).get(tp, []))
    consumer.close()
    return records


def test_bad_input_catalog(brokers, make_topic, orders_pipeline, run_bounded, store):
    topic = make_topic(partitions=3)
    good = OrderGenerator(seed=21, step_ms=100).take(3000)  # about 5 minutes of event time
    placed = next(c for c in good if c.type == "order.placed")
    paid = next(c for c in good if c.type == "order.paid")
    # An order placed near the end and not yet paid: its payment, dated long before every
    # partition's newest event, is good for `orders` but late for the minute windows.
    open_ids = {c.aggregate_id for c in good if c.type == "order.placed"} - {
        c.aggregate_id for c in good if c.type != "order.placed"
    }
    late_order = next(c for c in reversed(good) if c.aggregate_id in open_ids)
    late_paid = msgspec.structs.replace(
        paid,
        id="late-payment",
        aggregate_id=late_order.aggregate_id,
        ts=good[0].ts,
        data={
            **paid.data,
            "order_id": late_order.aggregate_id,
            "currency": late_order.data["currency"],
        },
    )
    now_ms = int(time.time() * 1000)

    def raw(command, **changes):
        return encode_command(msgspec.structs.replace(command, **changes))

    bad = [  # (key, value, reason)
        (b"k1", b"not json at all", "not_json"),
        (b"k2", b"\xff\xfe\xfd", "not_utf8"),
        (b"k3", b'["an", "array"]', "wrong_shape"),
        (
            b"k4",
            raw(paid).replace(b'"aggregate_id":"' + paid.aggregate_id.encode() + b'",', b""),
            "wrong_shape",
        ),
        (paid.aggregate_id.encode(), raw(paid, id="u1", type="order.refunded"), "unknown_type"),
        (paid.aggregate_id.encode(), raw(paid, id="u2", v=9), "unsupported_version"),
        (paid.aggregate_id.encode(), raw(paid, id="u3", ts=now_ms + 2 * 3_600_000), "future_time"),
        (None, raw(placed, id="u4"), "null_key"),
        (
            b"o-nowhere",
            raw(
                paid, id="u5", aggregate_id="o-nowhere", data={**paid.data, "order_id": "o-nowhere"}
            ),
            "invalid_transition",
        ),
        (
            b"k5",
            b'{"id":"big","type":"order.placed","aggregate_id":"k5","ts":1,"v":1,"data":{"blob":"'
            + b"x" * 5_000_000
            + b'"}}',
            "too_large",
        ),
    ]
    with CommandProducer(brokers, topic) as producer:
        for i, command in enumerate(good):
            producer.send(command)
            if i % 250 == 125 and i // 250 < len(bad):
                key, value, _ = bad[i // 250]
                producer.send_raw(key, value)
        producer.send(good[10])  # a duplicate id: deduplicated, not an error
        producer.send(late_paid)
        producer.flush()
        assert producer.errors == 0, producer.last_error

    registry = CollectorRegistry()
    deployment = run_bounded(orders_pipeline, topic, registry=registry)
    assert deployment.state is State.COMPLETED

    db = orders_pipeline.deployment
    accepted = [*good, late_paid]
    rows = list(store.query(f"SELECT {ORDER_COLUMNS} FROM `{db}`.orders FINAL").named_results())
    assert diff_orders(expected_orders(accepted), rows) == []

    revenue = orders_pipeline.projections[1]
    view = revenue.projector.view(qualified(db, revenue.output.table.name))
    windows = list(store.query(view).named_results())
    expected = expected_revenue_per_minute(good)  # the late payment is not in any window
    assert diff_windows(expected, windows, ("window_start", "region", "currency")) == []

    dlq = read_dlq(brokers, topic, expect=len(bad) + 1)
    reasons = {(r.key, r.value[:40]): dict(r.headers)["reason"].decode() for r in dlq}
    want = {(k, v[:40]): reason for k, v, reason in bad}
    want[(late_paid.aggregate_id.encode(), encode_command(late_paid)[:40])] = "late"
    assert reasons == want
    too_large = next(r for r in dlq if dict(r.headers)["reason"] == b"too_large")
    assert len(too_large.value) > 5_000_000  # raw bytes unchanged
    late = next(r for r in dlq if dict(r.headers)["reason"] == b"late")
    assert dict(late.headers)["step"] == b"revenue_per_minute/tumbling"

    labels = {"pipeline": orders_pipeline.name, "version": "1", "deployment": db}

    def total(name, **more):
        return sum(
            s.value
            for metric in registry.collect()
            for s in metric.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in {**labels, **more}.items())
        )

    consumed = total("cqrs_commands_consumed_total")
    shared_rejects = sum(1 for *_, reason in bad)
    assert consumed == len(good) + len(bad) + 2
    assert total("cqrs_commands_accepted_total") == len(accepted)
    assert total("cqrs_commands_skipped_total", step="dedupe", why="deduplicated") == 1
    # the ledger: consumed = accepted + rejected (by the shared filters) + deduplicated
    shared = sum(
        total("cqrs_commands_rejected_total", step=step)
        for step in ("decode", "validate", "order_state")
    )
    assert shared == shared_rejects
    assert consumed == len(accepted) + shared + 1
    # and the DLQ holds every reject: the shared ones plus the late payment
    assert total("cqrs_commands_rejected_total", reason="late") == 1
    assert len(dlq) == shared_rejects + 1
