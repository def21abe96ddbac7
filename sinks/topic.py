"""The topic sink: a projection that forwards commands to a downstream topic (`forward`).

Like the DLQ sink, a batch is acknowledged by the broker before `write_batch` returns, so a
Bytewax snapshot never covers a record still in a producer buffer.
"""

from __future__ import annotations

from typing import Any

import bytewax.operators as op
import msgspec
from bytewax.dataflow import Stream
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from clickhouse_connect.driver.client import Client
from kafka import KafkaProducer

from commands.log import RECONNECT_BACKOFF_MAX_MS, CommandLog
from core.errors import FailedAt
from core.outputs import Forwarded, Output
from sinks.output import Declared, OutputRefused, Results, SinkContext, SinkOutput, register_sink


class TopicParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: the topic it writes (created with as many partitions as the command log has)
    topic: str


@register_sink
class TopicOutput(SinkOutput):
    """A Kafka topic downstream: each record acknowledged by the broker before its batch is
    done. Named with the projection's `topic:`."""

    kind = "topic"
    params = TopicParams

    def __init__(self, name: str, topic: str) -> None:
        self.name = name
        self.topic = topic

    @classmethod
    def build(cls, declared: Declared) -> TopicOutput:
        if not declared.topic:
            raise OutputRefused(
                "topic",
                f"{declared.step_id!r} writes to a topic; name it with `topic: <name>`",
            )
        return cls(declared.projection, declared.topic)

    def prepare(self, client: Client, ctx: SinkContext) -> None:
        with CommandLog(ctx.brokers, self.topic) as downstream:
            downstream.ensure(partitions=len(ctx.partitions))

    def sink(self, ctx: SinkContext) -> TopicSink:
        return TopicSink(ctx.brokers, self.topic)

    def pick(self, produced: list[Output]) -> list[Forwarded]:
        return [p for p in produced if isinstance(p, Forwarded)]

    def stream(self, results: Results) -> Stream[Any]:
        name = self.name

        def records(item: tuple[str, Any]) -> list[Forwarded]:
            return item[1].items[name]

        return op.flat_map(f"{name}__records", results, records)

    def target(self, deployment: str) -> str:
        return self.topic


class TopicSink(DynamicSink[Forwarded]):
    def __init__(self, brokers: str, topic: str) -> None:
        self._brokers = brokers
        self._topic = topic
        self._built: list[_TopicPartition] = []

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _TopicPartition:
        producer = KafkaProducer(
            bootstrap_servers=self._brokers,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
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
