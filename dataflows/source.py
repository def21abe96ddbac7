"""`CommandLogSource`: the command log as a partitioned, resumable Bytewax source.

One Bytewax partition per log partition; the resume state is the next offset to read, so Bytewax
recovery is the only record of where a deployment stands (no consumer group holds offsets).
A start position applies only when there is no resume state. With `stop_at`, a partition ends
at the given offsets (a bounded replay); with `stop_event`, every partition ends at its next
batch (a graceful stop, after which Bytewax snapshots and the sinks flush).

A resume offset that the log no longer holds (retention deleted it) is an error, never a
silent jump to the earliest or latest offset.

The consumer reads committed records only (`read_committed`), and a partition's position is the
consumer's, not the last record's offset + 1: transaction markers and aborted records take
offsets the consumer never returns, and a bounded run or a lag gate measured by records would
wait for them forever. A poll that only moved the position past them is still emitted (with no
records), so progress moves too.

The consumer reads record batches with the compiled reader (`dataflows.fetch`), so a poll gives
`LogRecord`s. A record the client cannot parse (a corrupt batch, a header key that is not UTF-8,
a codec it lacks or that refuses the bytes) raises inside `poll`; any other error (the broker
gone) is the deployment's, and restarts it. When it raises twice at the same position, that
offset becomes a DLQ entry (`unreadable`, step `source`) and the consumer seeks past it. A
record batch is read from its start, so the records after an unreadable one in the same batch cannot
be read either: each of them becomes an entry of its own. Offsets an operator chose to pass
over (`cqrs skip`) become DLQ entries too (`skipped_by_operator`), with their bytes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import CorruptRecordError, KafkaError, UnsupportedCodecError

from commands.dead_letters import ReplayCheck
from commands.log import RECONNECT_BACKOFF_MAX_MS, CommandLog, part_key
from core.envelope import LogRecord, Polled, Reason, Rejected
from core.errors import CommandLogError
from dataflows.fetch import install

STEP_ID = "source"
#: records per poll of a partition, at most
BATCH_SIZE = 5000
#: the first wait after an empty poll of a partition that is behind its log's end (see
#: `next_wait`)
FIRST_WAIT = timedelta(milliseconds=1)

_HEADERS = attrgetter("headers")

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


Batch = tuple[str, Polled]  # (partition key, what one poll gave)


class CommandLogSource(FixedPartitionedSource[Batch, int]):
    """Emits one item per poll of a partition: `(partition key, Polled)`, so Bytewax moves
    batches, and the pipeline step receives them already keyed by partition.

    `skips` are offsets per partition an operator told the deployment to pass over; `dlq` is
    the DLQ topic that records claiming to be replays of dead letters are checked against;
    `careful` is, per partition, an offset up to which batches hold one record each (after a
    failure in a batch, so that the next one names its record)."""

    def __init__(
        self,
        brokers: str,
        topic: str,
        start: StartAt = StartAt(),
        stop_at: Mapping[int, int] | None = None,
        stop_event: threading.Event | None = None,
        batch_size: int = BATCH_SIZE,
        idle_wait: timedelta = timedelta(milliseconds=20),
        on_consumed: ConsumedObserver | None = None,
        partitions: list[int] | None = None,
        skips: Mapping[int, frozenset[int]] | None = None,
        dlq: str | None = None,
        careful: Mapping[int, int] | None = None,
    ) -> None:
        self.careful = dict(careful or {})
        self.partitions = partitions
        self.skips = dict(skips or {})
        self.replays = ReplayCheck(brokers, dlq) if dlq else None
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
        if self.replays is not None:
            self.replays.close()

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
        # A bounded run reads what its bound names: a partition added since is not in it.
        stop = self.stop_at.get(partition, offset) if self.stop_at is not None else None
        part = _LogPartition(self, partition, offset, stop)
        self._built.append(part)
        return part


def next_wait(wait: timedelta, behind: bool, idle_wait: timedelta) -> tuple[timedelta, timedelta]:
    """After a poll that gave nothing: how long until the next, and the wait to use after
    that one if it gives nothing too. At the log's end, `idle_wait`. Behind it (catching up,
    or not answered yet), the next fetch is in flight and lands within a millisecond or two on
    a near broker: a whole `idle_wait` there left the partition idle after every drained
    fetch, so the wait starts at `FIRST_WAIT` and doubles up to `idle_wait` while polls stay
    empty (a far broker costs a few polls more, not one a millisecond)."""
    if not behind:
        return idle_wait, FIRST_WAIT
    return wait, min(wait * 2, idle_wait)


def _raised_parsing(exc: BaseException) -> bool:
    """True when the client failed to parse a record batch (a corrupt batch, a header key that
    is not UTF-8, a codec it lacks or that refuses the bytes), not to reach the broker: only
    then is the record at fault."""
    if isinstance(exc, CorruptRecordError | UnsupportedCodecError):
        return True
    tb = exc.__traceback__
    while tb is not None:
        path = tb.tb_frame.f_code.co_filename.replace(os.sep, "/")
        if "/kafka/record/" in path or path.endswith("/kafka/codec.py"):
            return True
        tb = tb.tb_next
    return False


def read_records(
    messages: Sequence[LogRecord],
    stop: int | None,
    skips: frozenset[int],
    check: Callable[[LogRecord], LogRecord] | None,
) -> tuple[list[LogRecord], list[Rejected]]:
    """A poll's records (those before `stop`) and the rejects of the offsets in `skips`;
    `check` sees each record with headers (a replay's claim). Most polls have none of these
    to look at, and pass as they are: a Python iteration per record cost ~2 µs a command
    under load in scenario 2 (`python -m bench.profile`)."""
    if not (
        skips
        or (stop is not None and messages and messages[-1].offset >= stop)
        or (check is not None and any(map(_HEADERS, messages)))
    ):
        return list(messages), []
    return read_each(messages, stop, skips, check)


def read_each(
    messages: Sequence[LogRecord],
    stop: int | None,
    skips: frozenset[int],
    check: Callable[[LogRecord], LogRecord] | None,
) -> tuple[list[LogRecord], list[Rejected]]:
    """`read_records` a record at a time: for a poll with something to look at in a record."""
    records, rejects = [], []
    for record in messages:
        if stop is not None and record.offset >= stop:
            break
        if record.offset in skips:
            detail = f"offset {record.offset} skipped by an operator (cqrs skip)"
            rejects.append(Rejected(record, STEP_ID, Reason.SKIPPED_BY_OPERATOR, detail))
        elif record.headers and check is not None:
            records.append(check(record))
        else:
            records.append(record)
    return records, rejects


class _LogPartition(StatefulSourcePartition[Batch, int]):
    def __init__(
        self, source: CommandLogSource, partition: int, offset: int, stop: int | None
    ) -> None:
        self._source = source
        self._partition = partition
        self._key = part_key(partition)
        self._next = offset
        self._stop = stop
        self._skips = source.skips.get(partition, frozenset())
        self._careful_to = source.careful.get(partition, -1)
        self._tp = TopicPartition(source.topic, partition)
        self._awake: datetime | None = None
        self._wait = FIRST_WAIT  # before the next poll, if this one gives nothing
        self._report_at = 0.0  # when an idle partition next reports its lag
        self._suspect: int | None = None  # a position where poll raised once
        self._consumer: KafkaConsumer | None = None
        if stop is None or offset < stop:
            self._consumer = self._open(offset)

    def _open(self, offset: int) -> KafkaConsumer:
        source = self._source
        consumer = KafkaConsumer(
            bootstrap_servers=source.brokers,
            group_id=None,
            enable_auto_commit=False,
            # No silent reset: an offset outside the log raises instead of jumping.
            auto_offset_reset="none",
            isolation_level="read_committed",
            max_poll_records=source.batch_size,
            # Small fetch buffers: kafka-python keeps fetched data queued per consumer, and
            # catching up a backlog would fill 50 MB for each partition. The broker still
            # returns a record larger than these (a 5 MB command reaches the DLQ).
            max_partition_fetch_bytes=1024 * 1024,
            fetch_max_bytes=4 * 1024 * 1024,
            fetch_max_wait_ms=200,
            reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
        )
        install(consumer)
        consumer.assign([self._tp])
        consumer.seek(self._tp, offset)
        return consumer

    def next_batch(self) -> list[Batch]:
        source = self._source
        consumer = self._consumer
        if consumer is None or (source.stop_event is not None and source.stop_event.is_set()):
            if consumer is None and source.on_consumed is not None:
                # built at its stop (a bounded run resumed after it read to the end): nothing
                # to read, but its position is still what the metrics and the placement show
                source.on_consumed(self._partition, 0, self._next, None)
            raise StopIteration
        stop = self._stop
        if stop is not None and self._next >= stop:
            raise StopIteration
        try:
            size = 1 if self._next <= self._careful_to else source.batch_size
            messages = consumer.poll(timeout_ms=0, max_records=size).get(self._tp, ())
        except Exception as exc:
            if not _raised_parsing(exc):
                raise
            return self._unreadable(consumer, exc)
        try:
            position = consumer.position(self._tp)
        except KafkaError:  # it may ask the broker, which may be away: what was read is known
            position = messages[-1].offset + 1 if messages else self._next
        check = source.replays.checked if source.replays is not None else None
        records, rejects = read_records(messages, stop, self._skips, check)
        moved = min(position, stop) if stop is not None else position
        return self._emit(records, rejects, moved)

    def _emit(self, records: list[LogRecord], rejects: list[Rejected], moved: int) -> list[Batch]:
        source = self._source
        advanced = moved > self._next
        self._next = max(self._next, moved)
        consumer = self._consumer
        # as of the last fetch's answer: where the log ended then
        highwater = consumer.highwater(self._tp) if consumer is not None else None
        if (
            source.on_consumed is not None
            and consumer is not None
            and (advanced or time.monotonic() >= self._report_at)
        ):
            lag = None if highwater is None else max(0, highwater - self._next)
            source.on_consumed(self._partition, len(records) + len(rejects), self._next, lag)
            self._report_at = time.monotonic() + 1.0
        if not advanced:
            # unknown before the first fetch's answer: a new consumer is about to be answered
            behind = highwater is None or highwater > self._next
            wait, self._wait = next_wait(self._wait, behind, source.idle_wait)
            self._awake = datetime.now(UTC) + wait
            return []
        self._awake = None
        self._wait = FIRST_WAIT
        return [(self._key, Polled(self._partition, records, self._next, rejects))]

    def _unreadable(self, consumer: KafkaConsumer, exc: Exception) -> list[Batch]:
        """Poll raised: the first time at a position, read again from there with a new
        consumer (the error may have been the fetch's); the second time, the record there is
        unreadable: to the DLQ, and on past it. (A consumer whose poll raised inside a record
        batch is not used again: kafka-python 3.0 can spin on the batch it could not parse.)"""
        position = consumer.position(self._tp)
        consumer.close(timeout_ms=2000)
        again = self._suspect != position
        self._consumer = self._open(position if again else position + 1)
        if again:
            self._suspect = position
            self._awake = datetime.now(UTC) + self._source.idle_wait
            return []
        record = LogRecord(self._partition, position, -1, None, None)
        detail = f"the Kafka client cannot read offset {position}: {type(exc).__name__}: {exc}"
        reject = Rejected(record, STEP_ID, Reason.UNREADABLE, detail)
        return self._emit([], [reject], position + 1)

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> int:
        return self._next

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close(timeout_ms=2000)
            self._consumer = None
