"""`CommandLogSource`: the command log as a partitioned, resumable Bytewax source.

One Bytewax partition per log partition; the resume state is the next offset to read, so Bytewax
recovery is the only record of where a deployment stands (no consumer group holds offsets).
A start position applies only when there is no resume state. With `stop_at`, a partition ends
at the given offsets (a bounded replay); with `stop_event`, every partition ends at its next
batch (a graceful stop, after which Bytewax snapshots and the sinks flush).

A resume offset that the log no longer holds (retention deleted it) is an error, never a
silent jump to the earliest or latest offset.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from kafka import KafkaConsumer, TopicPartition

from commands.envelope import LogRecord
from commands.errors import CommandLogError
from commands.log import CommandLog, part_key

# (partition, records, next offset, lag: records in the partition not read yet, if known)
ConsumedObserver = Callable[[int, int, int, int | None], None]


@dataclass(frozen=True)
class StartAt:
    """Where a partition starts without resume state: `earliest`, `latest`, a log time in epoch
    milliseconds (`timestamp_ms`), or explicit `offsets` per partition."""

    kind: str = "earliest"
    timestamp_ms: int | None = None
    offsets: Mapping[int, int] | None = None

    def resolve(self, log: CommandLog, partition: int) -> int:
        if self.kind == "earliest":
            return log.beginning_offsets()[partition]
        if self.kind == "latest":
            return log.end_offsets()[partition]
        if self.kind == "timestamp" and self.timestamp_ms is not None:
            return log.offsets_for_time(self.timestamp_ms)[partition]
        if self.kind == "offsets" and self.offsets is not None:
            if partition in self.offsets:
                return self.offsets[partition]
            return log.beginning_offsets()[partition]
        raise CommandLogError(f"start position {self!r} is incomplete")


Batch = tuple[str, list[LogRecord]]  # (partition key, records in log order)


class CommandLogSource(FixedPartitionedSource[Batch, int]):
    """Emits one item per poll of a partition: `(partition key, records)`, so Bytewax moves
    batches, and the pipeline step receives them already keyed by partition."""

    def __init__(
        self,
        brokers: str,
        topic: str,
        start: StartAt = StartAt(),
        stop_at: Mapping[int, int] | None = None,
        stop_event: threading.Event | None = None,
        batch_size: int = 5000,
        idle_wait: timedelta = timedelta(milliseconds=20),
        on_consumed: ConsumedObserver | None = None,
        partitions: list[int] | None = None,
    ) -> None:
        self.partitions = partitions
        self.brokers = brokers
        self.topic = topic
        self.start = start
        self.stop_at = dict(stop_at) if stop_at is not None else None
        self.stop_event = stop_event
        self.batch_size = batch_size
        self.idle_wait = idle_wait
        self.on_consumed = on_consumed
        self._built: list[_LogPartition] = []

    def close_all(self) -> None:
        """Close every partition built; Bytewax calls `close` only after finite input, not
        when a run fails, and a failed run must not leave consumers reconnecting forever."""
        for part in self._built:
            part.close()

    def list_parts(self) -> list[str]:
        if self.partitions is not None:
            return [part_key(p) for p in self.partitions]
        with CommandLog(self.brokers, self.topic) as log:
            return [part_key(p) for p in log.partitions()]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _LogPartition:
        partition = int(for_part)
        with CommandLog(self.brokers, self.topic) as log:
            begin = log.beginning_offsets()[partition]
            end = log.end_offsets()[partition]
            offset = self.start.resolve(log, partition) if resume_state is None else resume_state
        if offset < begin:
            raise CommandLogError(
                f"{self.topic}[{partition}]: resume offset {offset} is before the log's first "
                f"offset {begin} (retention removed it); refusing to skip commands. Replay the "
                f"deployment from the earliest offset into a new database instead"
            )
        if offset > end:
            raise CommandLogError(
                f"{self.topic}[{partition}]: resume offset {offset} is past the log's end {end}: "
                f"this recovery state belongs to another log (a recreated topic?)"
            )
        stop = self.stop_at.get(partition) if self.stop_at is not None else None
        part = _LogPartition(self, partition, offset, stop)
        self._built.append(part)
        return part


class _LogPartition(StatefulSourcePartition[Batch, int]):
    def __init__(
        self, source: CommandLogSource, partition: int, offset: int, stop: int | None
    ) -> None:
        self._source = source
        self._partition = partition
        self._key = part_key(partition)
        self._next = offset
        self._stop = stop
        self._tp = TopicPartition(source.topic, partition)
        self._awake: datetime | None = None
        self._report_at = 0.0  # when an idle partition next reports its lag
        self._consumer: KafkaConsumer | None = None
        if stop is None or offset < stop:
            self._consumer = KafkaConsumer(
                bootstrap_servers=source.brokers,
                group_id=None,
                enable_auto_commit=False,
                # No silent reset: an offset outside the log raises instead of jumping.
                auto_offset_reset="none",
                max_poll_records=source.batch_size,
                # Small fetch buffers: kafka-python keeps fetched data queued per consumer, and
                # catching up a backlog would fill 50 MB for each partition. The broker still
                # returns a record larger than these (a 5 MB command reaches the DLQ).
                max_partition_fetch_bytes=1024 * 1024,
                fetch_max_bytes=4 * 1024 * 1024,
                fetch_max_wait_ms=200,
            )
            self._consumer.assign([self._tp])
            self._consumer.seek(self._tp, offset)

    def next_batch(self) -> list[Batch]:
        source = self._source
        if self._consumer is None or (source.stop_event is not None and source.stop_event.is_set()):
            raise StopIteration
        if self._stop is not None and self._next >= self._stop:
            raise StopIteration
        polled = self._consumer.poll(timeout_ms=0, max_records=source.batch_size)
        messages = polled.get(self._tp, ())
        stop = self._stop
        batch = [
            LogRecord(m.partition, m.offset, m.timestamp, m.key, m.value, m.headers or [])
            for m in messages
            if stop is None or m.offset < stop
        ]
        if batch:
            self._next = batch[-1].offset + 1
        if source.on_consumed is not None and (batch or time.monotonic() >= self._report_at):
            highwater = self._consumer.highwater(self._tp)
            lag = None if highwater is None else max(0, highwater - self._next)
            source.on_consumed(self._partition, len(batch), self._next, lag)
            self._report_at = time.monotonic() + 1.0
        if not batch:
            self._awake = datetime.now(UTC) + source.idle_wait
            return []
        self._awake = None
        return [(self._key, batch)]

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> int:
        return self._next

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close(timeout_ms=2000)
            self._consumer = None
