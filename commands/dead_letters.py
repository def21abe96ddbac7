"""Reading the DLQ, and putting fixed commands back on the log.

A dead letter is a rejected record exactly as it was logged, with why and where in its headers.
Replaying one re-produces its bytes, with its key, to the command log: after the cause is fixed
(a schema registered, an upcast added), the pipeline takes it like any new command.

A deployment that restarts redoes the work since its last snapshot, rejects included, so the
DLQ can hold the same rejection more than once. Readers show each once: a rejection is the same
when its deployment, step, source topic, partition and offset are (`DeadLetter.rejection`).

A replayed record carries the DLQ offset it came from in a header, and `dedupe` lets it through
once. Anyone who can write to the log can set a header, so the source checks the claim
(`ReplayCheck`): only a record whose key and bytes equal those of the dead letter at that
offset counts as its replay. Such a replay can do nothing a `cqrs dlq replay` could not.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import msgspec
from kafka import KafkaConsumer, TopicPartition

from commands.log import MAX_RECORD_BYTES
from commands.producer import CommandProducer
from core.envelope import LogRecord

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

    @property
    def rejection(self) -> tuple[str, ...]:
        """What identifies the rejection, whichever run of its deployment wrote it."""
        h = self.headers
        return tuple(
            h.get(k, "")
            for k in ("deployment", "step", "source.topic", "source.partition", "source.offset")
        )


def first_of_each(letters: Iterable[DeadLetter]) -> Iterator[DeadLetter]:
    """Each rejection once: the first dead letter of it (the DLQ has one partition, in order)."""
    seen: set[tuple[str, ...]] = set()
    for letter in letters:
        if letter.rejection not in seen:
            seen.add(letter.rejection)
            yield letter


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


class ReplayCheck:
    """Tells whether a record that says it is a replay of a dead letter is one: its key and
    bytes must be those of the dead letter at the offset it names."""

    def __init__(self, brokers: str, dlq: str, remembered: int = 1024) -> None:
        self._brokers = brokers
        self._tp = TopicPartition(dlq, 0)
        self._consumer: KafkaConsumer | None = None
        self._letters: OrderedDict[int, tuple[bytes | None, bytes | None] | None] = OrderedDict()
        self._remembered = remembered

    def checked(self, record: LogRecord) -> LogRecord:
        """The record, with `replayed_from` set when its claim holds."""
        claim = record.header(REPLAYED_HEADER)
        if claim is None or not claim.isdigit():
            return record
        offset = int(claim)
        if self._letter(offset) != (record.key, record.value):
            return record
        return msgspec.structs.replace(record, replayed_from=offset)

    def _letter(self, offset: int) -> tuple[bytes | None, bytes | None] | None:
        if offset in self._letters:
            self._letters.move_to_end(offset)
            return self._letters[offset]
        letter = self._read(offset)
        self._letters[offset] = letter
        if len(self._letters) > self._remembered:
            self._letters.popitem(last=False)
        return letter

    def _read(self, offset: int, wait_s: float = 10.0) -> tuple[bytes | None, bytes | None] | None:
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                bootstrap_servers=self._brokers,
                enable_auto_commit=False,
                max_partition_fetch_bytes=MAX_RECORD_BYTES + 1024 * 1024,
            )
            self._consumer.assign([self._tp])
        consumer, tp = self._consumer, self._tp
        begin = consumer.beginning_offsets([tp])[tp]
        end = consumer.end_offsets([tp])[tp]
        if not begin <= offset < end:
            return None
        consumer.seek(tp, offset)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            for r in consumer.poll(timeout_ms=200).get(tp, []):
                if r.offset == offset:
                    return r.key, r.value
                if r.offset > offset:
                    return None
        # Not an answer: the deployment fails and retries, rather than judge the claim false.
        raise TimeoutError(f"{tp.topic}@{offset}: no answer from the broker in {wait_s:.0f}s")

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
