"""The command log as a topic: create it, and ask the broker where it begins and ends.

The log is the system of record, so it is created with unlimited retention and is never
rewritten. Offsets are read with a group-less consumer: positions live in Bytewax recovery,
never in a consumer group. That consumer reads committed records only, so the end offsets it
reports are the last stable offsets: what a pipeline can read now, past the markers of
transactions that ended.

The log stamps each record with the broker's time (`message.timestamp.type=LogAppendTime`):
the time a producer sets is replaced, so no producer can date a record ahead of the broker's
clock, and every check of event time against log time is a check against that clock.
"""

from __future__ import annotations

import contextlib
import time

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaError, TopicAlreadyExistsError

from core.errors import CommandLogError

FOREVER = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
#: the largest record the log (and its DLQ) takes: an oversized command must reach the pipeline,
#: to be refused there with a reason, rather than bounce off the broker
MAX_RECORD_BYTES = 16 * 1024 * 1024
#: what a topic of the project must have, whether it was created here or before
ENFORCED = {"message.timestamp.type": "LogAppendTime"}
LOG_CONFIGS = {**FOREVER, **ENFORCED, "max.message.bytes": str(MAX_RECORD_BYTES)}
#: the longest a client waits between attempts to reach a broker that went away (Kafka's Java
#: clients' default). kafka-python's is 30 s: its backoff doubles through an outage, so after
#: ten seconds down a pipeline or an edge went on idling ~11 s after the broker was back
#: (measured: 0.6 s with this). An attempt a second to a broker that is down costs nothing.
RECONNECT_BACKOFF_MAX_MS = 1000


class CommandLog:
    """Admin and offset queries for one topic; opens its clients lazily and closes them."""

    def __init__(self, brokers: str, topic: str, timeout_s: float = 30.0) -> None:
        self.brokers = brokers
        self.topic = topic
        self._timeout_ms = int(timeout_s * 1000)
        self._consumer: KafkaConsumer | None = None
        self._reader: KafkaConsumer | None = None

    def __enter__(self) -> CommandLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for client in (self._consumer, self._reader):
            if client is not None:
                client.close()
        self._consumer = self._reader = None

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

    def enforce(self, configs: dict[str, str]) -> dict[str, tuple[str, str]]:
        """Set `configs` on the existing topic where it differs; {name: (was, now)} changed."""
        resource = ConfigResourceType.TOPIC
        admin = KafkaAdminClient(
            bootstrap_servers=self.brokers, bootstrap_timeout_ms=self._timeout_ms
        )
        try:
            found = admin.describe_configs(
                [ConfigResource(resource, self.topic, configs=dict.fromkeys(configs))],
                config_filter="all",
            )["topic"][self.topic]
            changed = {
                name: (found.get(name, {}).get("value") or "", value)
                for name, value in configs.items()
                if found.get(name, {}).get("value") != value
            }
            if changed:
                wanted = {name: now for name, (_, now) in changed.items()}
                admin.alter_configs([ConfigResource(resource, self.topic, configs=wanted)])
        except KafkaError as exc:
            raise CommandLogError(
                f"cannot configure topic {self.topic!r} on {self.brokers}: {exc}"
            ) from exc
        finally:
            admin.close()
        return changed

    def _offsets_consumer(self) -> KafkaConsumer:
        if self._consumer is None:
            try:
                self._consumer = KafkaConsumer(
                    bootstrap_servers=self.brokers,
                    enable_auto_commit=False,
                    isolation_level="read_committed",
                    # partitions added to the topic show within seconds, not minutes
                    metadata_max_age_ms=5000,
                    bootstrap_timeout_ms=self._timeout_ms,
                    request_timeout_ms=max(self._timeout_ms, 30_000) + 1000,
                )
            except KafkaError as exc:
                raise CommandLogError(f"cannot reach the broker at {self.brokers}: {exc}") from exc
        return self._consumer

    def partitions(self, fresh: bool = False) -> list[int]:
        """The topic's partition ids (`fresh`: asking the broker now rather than the metadata
        of the last few seconds); a missing topic is an error that says how to create it."""
        consumer = self._offsets_consumer()
        if fresh:
            consumer.topics()  # refreshes the metadata
        parts = consumer.partitions_for_topic(self.topic)
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
        """The last stable offset of each partition: what "caught up" is measured against (the
        next offset it will write, once no transaction is open)."""
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

    def behind(self, offsets: dict[int, int], timeout_s: float = 5.0) -> dict[int, float | None]:
        """Per partition, the seconds from the log time of the first committed record at or
        after the offset until now: for a reader at those offsets, how long the oldest record
        it has not applied has been on the log. 0 where nothing is left to read (only the end,
        transaction markers or aborted records); None where the partition did not answer
        within `timeout_s` (unknown, which a gate must not take for caught up). With
        LogAppendTime the log time is the broker's clock."""
        deadline = time.monotonic() + timeout_s
        now_ms = time.time() * 1000
        out: dict[int, float | None] = {}
        for partition, offset in offsets.items():
            found = self._first_time(TopicPartition(self.topic, partition), offset, deadline)
            out[partition] = found if found is None else max(0.0, (now_ms - found) / 1000)
        return out

    def _first_time(self, tp: TopicPartition, offset: int, deadline: float) -> float | None:
        """The log time of the first committed record at or after `offset`; infinitely late
        (0 behind) when there is none, None when the broker did not answer by `deadline`. One
        partition at a time: a broker sends a record batch larger than the fetch limit only
        for the first partition of a fetch, so a fetch of several would starve the others."""
        reader = self._times_reader()
        reader.assign([tp])
        try:
            reader.seek(tp, offset)
            # the last stable offset: records of open transactions are not there to read yet
            end = reader.end_offsets([tp])[tp]
            while time.monotonic() < deadline:
                records = reader.poll(timeout_ms=100, max_records=1).get(tp)
                if records:
                    return float(records[0].timestamp)
                if reader.position(tp) >= end:
                    return float("inf")
            return None
        finally:
            reader.assign([])

    def _times_reader(self) -> KafkaConsumer:
        if self._reader is None:
            try:
                self._reader = KafkaConsumer(
                    bootstrap_servers=self.brokers,
                    enable_auto_commit=False,
                    isolation_level="read_committed",
                    bootstrap_timeout_ms=self._timeout_ms,
                    # one record is wanted: a fetch brings back the first batch whatever its size
                    max_partition_fetch_bytes=64 * 1024,
                    fetch_max_bytes=64 * 1024,
                    fetch_max_wait_ms=100,
                )
            except KafkaError as exc:
                raise CommandLogError(f"cannot reach the broker at {self.brokers}: {exc}") from exc
        return self._reader


def part_key(partition: int) -> str:
    """The Bytewax partition key of a log partition: zero-padded, so that sorting keys (as
    Bytewax does to route items) keeps the partitions' numeric order."""
    return f"{partition:05d}"
