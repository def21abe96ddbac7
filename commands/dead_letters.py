"""Reading the DLQ, and putting fixed commands back on the log.

A dead letter is a rejected record exactly as it was logged, with why and where in its headers.
Replaying one re-produces its bytes, with its key, to the command log: after the cause is fixed
(a schema registered, an upcast added), the pipeline takes it like any new command.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition

from commands.log import MAX_RECORD_BYTES
from commands.producer import CommandProducer

REPLAYED_HEADER = "replayed-from-dlq"


@dataclass(frozen=True)
class DeadLetter:
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]

    @property
    def reason(self) -> str:
        return self.headers.get("reason", "")

    @property
    def step(self) -> str:
        return self.headers.get("step", "")


def read_dead_letters(
    brokers: str,
    dlq: str,
    from_offset: int = 0,
    limit: int | None = None,
    follow: bool = False,
    idle_s: float = 1.0,
) -> Iterator[DeadLetter]:
    """Dead letters from `from_offset` on; without `follow`, stop once nothing more comes."""
    consumer = KafkaConsumer(
        bootstrap_servers=brokers,
        enable_auto_commit=False,
        max_partition_fetch_bytes=MAX_RECORD_BYTES + 1024 * 1024,
    )
    tp = TopicPartition(dlq, 0)
    try:
        consumer.assign([tp])
        start = max(from_offset, consumer.beginning_offsets([tp])[tp])
        end = consumer.end_offsets([tp])[tp]
        consumer.seek(tp, start)
        count = 0
        quiet_since = time.monotonic()
        while limit is None or count < limit:
            if not follow and consumer.position(tp) >= end:
                return
            records = consumer.poll(timeout_ms=200).get(tp, [])
            if not records:
                if not follow and time.monotonic() - quiet_since > idle_s:
                    return
                continue
            quiet_since = time.monotonic()
            for r in records:
                yield DeadLetter(
                    offset=r.offset,
                    timestamp=r.timestamp,
                    key=r.key,
                    value=r.value,
                    headers={k: v.decode(errors="replace") for k, v in (r.headers or [])},
                )
                count += 1
                if limit is not None and count >= limit:
                    return
    finally:
        consumer.close()


def replay(brokers: str, log_topic: str, letters: list[DeadLetter]) -> int:
    """Re-produce the letters' raw bytes to the command log; the count acknowledged."""
    with CommandProducer(brokers, log_topic) as producer:
        for letter in letters:
            producer.send_raw(
                letter.key,
                letter.value,
                headers=[(REPLAYED_HEADER, str(letter.offset).encode())],
            )
        producer.flush()
        return producer.acked
