"""The broker launcher on its own: a second broker beside the session's, in its own home."""

import time

import pytest
from kafka import KafkaConsumer, TopicPartition

from commands.errors import BrokerError
from commands.log import CommandLog
from commands.producer import CommandProducer
from deploy.broker import LocalBroker
from tests.conftest import distribution


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


@pytest.mark.slow  # starts a broker of its own, twice
def test_start_produce_consume_stop_and_start_again(tmp_path):
    broker = LocalBroker(tmp_path / "home", distribution())
    first = broker.start()
    try:
        assert broker.status() == first
        assert broker.start() == first  # starting a running broker finds it
        with CommandLog(first.bootstrap, "launcher_check") as log:
            assert log.ensure(partitions=1) == 1
        with CommandProducer(first.bootstrap, "launcher_check") as producer:
            for i in range(100):
                producer.send_raw(b"k", f"v{i}".encode())
            producer.flush()
            assert producer.acked == 100
        assert consume_all(first.bootstrap, "launcher_check") == [
            f"v{i}".encode() for i in range(100)
        ]
    finally:
        assert broker.stop() is True
    assert broker.status() is None
    assert broker.stop() is False

    started = time.monotonic()
    second = broker.start()  # jars from the cache, storage kept
    took = time.monotonic() - started
    try:
        assert broker.dist.is_cached
        assert second.port == first.port
        assert second.pid != first.pid
        assert took < 60, f"a cached start took {took:.1f}s"
        # The log is the system of record: it survived the restart.
        assert len(consume_all(second.bootstrap, "launcher_check")) == 100
    finally:
        broker.stop()


def test_a_taken_port_is_refused_clearly(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        broker = LocalBroker(tmp_path / "home", distribution(), port=taken)
        with pytest.raises(BrokerError, match=f"port {taken} on 127.0.0.1 is taken"):
            broker.start()
