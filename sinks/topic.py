"""The topic sink: a projection that forwards commands to a downstream topic.

Like the DLQ sink, a batch is acknowledged by the broker before `write_batch` returns, so a
Bytewax snapshot never covers a record still in a producer buffer.
"""

from __future__ import annotations

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from kafka import KafkaProducer

from core.errors import FailedAt
from core.outputs import Forwarded


class TopicSink(DynamicSink[Forwarded]):
    def __init__(self, brokers: str, topic: str) -> None:
        self._brokers = brokers
        self._topic = topic
        self._built: list[_TopicPartition] = []

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _TopicPartition:
        producer = KafkaProducer(
            bootstrap_servers=self._brokers, acks="all", enable_idempotence=True, linger_ms=5
        )
        part = _TopicPartition(producer, self._topic)
        self._built.append(part)
        return part

    def close_all(self) -> None:
        for part in self._built:
            part.close()


class _TopicPartition(StatelessSinkPartition[Forwarded]):
    def __init__(self, producer: KafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    def write_batch(self, items: list[Forwarded]) -> None:
        futures = [self._producer.send(self._topic, key=f.key, value=f.value) for f in items]
        self._producer.flush()
        for item, future in zip(items, futures, strict=True):
            try:
                future.get(timeout=0)  # raises the send's error, if any
            except Exception as exc:
                raise FailedAt(item.partition, item.offset, exc) from exc

    def close(self) -> None:
        self._producer.close(timeout=5)
