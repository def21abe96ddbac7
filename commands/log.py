"""The command log as a topic: create it, and ask the broker where it begins and ends.

The log is the system of record, so it is created with unlimited retention and is never
rewritten. Offsets are read with a group-less consumer: positions live in Bytewax recovery,
never in a consumer group.
"""

from __future__ import annotations

import contextlib
import time

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.protocol.consumer.offsets import OffsetSpec

from commands.errors import CommandLogError

FOREVER = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
#: the largest record the log (and its DLQ) takes: an oversized command must reach the pipeline,
#: to be refused there with a reason, rather than bounce off the broker
MAX_RECORD_BYTES = 16 * 1024 * 1024
#: the broker stamps each record with the time it appended it: log time then means the same for
#: every producer, and how far a deployment is behind the head of the log can be told in time
LOG_CONFIGS = {
    **FOREVER,
    "max.message.bytes": str(MAX_RECORD_BYTES),
    "message.timestamp.type": "LogAppendTime",
}


class CommandLog:
    """Admin and offset queries for one topic; opens its clients lazily and closes them."""

    def __init__(self, brokers: str, topic: str, timeout_s: float = 30.0) -> None:
        self.brokers = brokers
        self.topic = topic
        self._timeout_ms = int(timeout_s * 1000)
        self._consumer: KafkaConsumer | None = None
        self._reader: KafkaConsumer | None = None
        self._admin: KafkaAdminClient | None = None

    def __enter__(self) -> CommandLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for client in (self._consumer, self._reader, self._admin):
            if client is not None:
                client.close()
        self._consumer = self._reader = self._admin = None

    def ensure(self, partitions: int = 6, configs: dict[str, str] | None = None) -> int:
        """Create the topic if it is missing; return its partition count either way."""
        if partitions < 1:
            raise CommandLogError(f"partitions must be at least 1, got {partitions}")
        admin = KafkaAdminClient(
            bootstrap_servers=self.brokers, bootstrap_timeout_ms=self._timeout_ms
        )
        try:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(
                    {
                        self.topic: {
                            "num_partitions": partitions,
                            "replication_factor": -1,
                            "configs": {**LOG_CONFIGS, **(configs or {})},
                        }
                    }
                )
            admin.wait_for_topics([self.topic], timeout_ms=self._timeout_ms)
        except KafkaError as exc:
            raise CommandLogError(
                f"cannot create topic {self.topic!r} on {self.brokers}: {exc}"
            ) from exc
        finally:
            admin.close()
        return len(self.partitions())

    def _offsets_consumer(self) -> KafkaConsumer:
        if self._consumer is None:
            try:
                self._consumer = KafkaConsumer(
                    bootstrap_servers=self.brokers,
                    enable_auto_commit=False,
                    bootstrap_timeout_ms=self._timeout_ms,
                    request_timeout_ms=max(self._timeout_ms, 30_000) + 1000,
                )
            except KafkaError as exc:
                raise CommandLogError(f"cannot reach the broker at {self.brokers}: {exc}") from exc
        return self._consumer

    def partitions(self) -> list[int]:
        """The topic's partition ids; a missing topic is an error that says how to create it."""
        parts = self._offsets_consumer().partitions_for_topic(self.topic)
        if not parts:
            raise CommandLogError(
                f"topic {self.topic!r} does not exist on {self.brokers}; "
                f"create it with `cqrs topic create --topic {self.topic}`"
            )
        return sorted(parts)

    def _tps(self) -> list[TopicPartition]:
        return [TopicPartition(self.topic, p) for p in self.partitions()]

    def beginning_offsets(self) -> dict[int, int]:
        found = self._offsets_consumer().beginning_offsets(self._tps())
        return {tp.partition: off for tp, off in found.items()}

    def end_offsets(self) -> dict[int, int]:
        """The next offset each partition will write: what "caught up" is measured against."""
        found = self._offsets_consumer().end_offsets(self._tps())
        return {tp.partition: off for tp, off in found.items()}

    def offsets_for_time(self, timestamp_ms: int) -> dict[int, int]:
        """The first offset at or after `timestamp_ms` (log time) in each partition; the end
        offset where no record is that late."""
        tps = self._tps()
        found = self._offsets_consumer().offsets_for_times({tp: timestamp_ms for tp in tps})
        ends = self.end_offsets()
        return {
            tp.partition: (hit.offset if hit is not None else ends[tp.partition])
            for tp, hit in found.items()
        }

    def behind(self, offsets: dict[int, int], timeout_s: float = 5.0) -> dict[int, float]:
        """Per partition, the seconds of log time from the first committed record at or after
        the offset to the newest record of the partition: for a reader at those offsets, how
        far what it has applied is behind the head of the log. 0 where nothing is left to read
        (only the end, transaction markers or aborted records), and where the partition does
        not answer within `timeout_s`. Both times come from the log, so a producer's clock, or
        its records waiting in its own buffer, do not count."""
        if not offsets:
            return {}
        tps = {p: TopicPartition(self.topic, p) for p in offsets}
        first = self._first_times(tps, offsets, timeout_s)
        pending = [tps[p] for p, t in first.items() if t is not None]
        if not pending:
            return {p: 0.0 for p in offsets}
        try:
            newest = self._admin_client().list_partition_offsets(
                dict.fromkeys(pending, OffsetSpec.MAX_TIMESTAMP)
            )
        except KafkaError as exc:
            raise CommandLogError(f"cannot read the head of {self.topic}: {exc}") from exc
        heads = {tp.partition: found.timestamp for tp, found in newest.items()}
        return {
            p: max(0.0, (heads.get(p, t) - t) / 1000) if (t := first.get(p)) is not None else 0.0
            for p in offsets
        }

    def _first_times(
        self, tps: dict[int, TopicPartition], offsets: dict[int, int], timeout_s: float
    ) -> dict[int, int | None]:
        """The log time of the first committed record at or after each offset (None: none)."""
        reader = self._times_reader()
        reader.assign(list(tps.values()))
        for p, tp in tps.items():
            reader.seek(tp, offsets[p])
        # the last stable offset: records of open transactions are not there to read yet
        ends = {tp.partition: end for tp, end in reader.end_offsets(list(tps.values())).items()}
        found: dict[int, int | None] = {}
        deadline = time.monotonic() + timeout_s
        while len(found) < len(tps) and time.monotonic() < deadline:
            for tp, records in reader.poll(timeout_ms=100, max_records=500).items():
                if tp.partition not in found and records:
                    found[tp.partition] = records[0].timestamp
                    reader.pause(tp)
            for p, tp in tps.items():
                if p not in found and reader.position(tp) >= ends.get(p, 0):
                    found[p] = None
                    reader.pause(tp)
        reader.assign([])
        return {p: found.get(p) for p in offsets}

    def _admin_client(self) -> KafkaAdminClient:
        if self._admin is None:
            try:
                self._admin = KafkaAdminClient(
                    bootstrap_servers=self.brokers, bootstrap_timeout_ms=self._timeout_ms
                )
            except KafkaError as exc:
                raise CommandLogError(f"cannot reach the broker at {self.brokers}: {exc}") from exc
        return self._admin

    def _times_reader(self) -> KafkaConsumer:
        if self._reader is None:
            try:
                self._reader = KafkaConsumer(
                    bootstrap_servers=self.brokers,
                    enable_auto_commit=False,
                    isolation_level="read_committed",
                    bootstrap_timeout_ms=self._timeout_ms,
                    # one record per partition is wanted: keep what a fetch brings back small
                    max_partition_fetch_bytes=64 * 1024,
                    fetch_max_bytes=1024 * 1024,
                    fetch_max_wait_ms=100,
                )
            except KafkaError as exc:
                raise CommandLogError(f"cannot reach the broker at {self.brokers}: {exc}") from exc
        return self._reader


def part_key(partition: int) -> str:
    """The Bytewax partition key of a log partition: zero-padded, so that sorting keys (as
    Bytewax does to route items) keeps the partitions' numeric order."""
    return f"{partition:05d}"
