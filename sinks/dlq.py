"""The DLQ sink: every rejected record goes to `<log topic>.dlq`, raw bytes unchanged, with the
reason and where it came from in headers.

A batch is flushed (acknowledged by the broker) before `write_batch` returns, so the epoch that
contains a reject cannot be snapshotted while the reject is still in a producer buffer. A send
that fails raises: the deployment restarts from its last snapshot rather than lose the record.
"""

from __future__ import annotations

import logging

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from kafka import KafkaProducer

from commands.envelope import Rejected
from commands.log import MAX_RECORD_BYTES, CommandLog

log = logging.getLogger(__name__)

DLQ_SUFFIX = ".dlq"
MAX_DETAIL = 2000


def dlq_topic(log_topic: str) -> str:
    return log_topic + DLQ_SUFFIX


def ensure_dlq(brokers: str, log_topic: str) -> str:
    """Create the log's DLQ (one partition: rejects are few, and one order is easy to read)."""
    topic = dlq_topic(log_topic)
    with CommandLog(brokers, topic) as dlq:
        dlq.ensure(partitions=1)
    return topic


def headers_of(rejected: Rejected, source_topic: str, deployment: str) -> list[tuple[str, bytes]]:
    record = rejected.record
    pipeline, _, version = deployment.rpartition("_v")
    return [
        ("reason", rejected.reason.value.encode()),
        ("step", rejected.step.encode()),
        ("detail", rejected.detail[:MAX_DETAIL].encode()),
        ("source.topic", source_topic.encode()),
        ("source.partition", str(record.partition).encode()),
        ("source.offset", str(record.offset).encode()),
        ("source.timestamp", str(record.timestamp).encode()),
        ("pipeline", pipeline.encode()),
        ("version", version.encode()),
        ("deployment", deployment.encode()),
    ]


class DlqWriter:
    """Writes rejects to the DLQ and waits until the broker has them all."""

    def __init__(self, brokers: str, source_topic: str, deployment: str) -> None:
        self._producer = KafkaProducer(
            bootstrap_servers=brokers,
            acks="all",
            enable_idempotence=True,
            max_request_size=MAX_RECORD_BYTES + 64 * 1024,
            linger_ms=5,
        )
        self._topic = dlq_topic(source_topic)
        self._source_topic = source_topic
        self._deployment = deployment

    def write(self, rejects: list[Rejected]) -> None:
        futures = []
        for rejected in rejects:
            record = rejected.record
            log.warning(
                "rejected %s[%d]@%d at %s: %s (%s)",
                self._source_topic,
                record.partition,
                record.offset,
                rejected.step,
                rejected.reason.value,
                rejected.detail[:200],
            )
            futures.append(
                self._producer.send(
                    self._topic,
                    key=record.key,
                    value=record.value,
                    headers=headers_of(rejected, self._source_topic, self._deployment),
                )
            )
        self._producer.flush()
        for future in futures:
            future.get(timeout=0)  # raises the send's error, if any

    def close(self) -> None:
        self._producer.close(timeout=5)


class DlqSink(DynamicSink[Rejected]):
    def __init__(self, brokers: str, source_topic: str, deployment: str) -> None:
        self._brokers = brokers
        self._source_topic = source_topic
        self._deployment = deployment

        self._built: list[DlqWriter] = []

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _DlqPartition:
        writer = DlqWriter(self._brokers, self._source_topic, self._deployment)
        self._built.append(writer)
        return _DlqPartition(writer)

    def close_all(self) -> None:
        for writer in self._built:
            writer.close()


class _DlqPartition(StatelessSinkPartition[Rejected]):
    def __init__(self, writer: DlqWriter) -> None:
        self._writer = writer

    def write_batch(self, items: list[Rejected]) -> None:
        self._writer.write(items)

    def close(self) -> None:
        self._writer.close()
