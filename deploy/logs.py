"""The runtime's handles on the broker, shared by its threads (the API's, the supervisor's):
one `CommandLog` per topic behind one lock (a KafkaConsumer is not for several threads), and
one admin client that commits every deployment's written offsets to a consumer group of its
own name (monitoring only: the broker's tools show its lag; Bytewax recovery stays the one
record of where to resume)."""

from __future__ import annotations

import logging
import threading

from kafka import KafkaAdminClient, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from commands.log import CommandLog
from dataflows.source import StartAt
from deploy import positions

log = logging.getLogger(__name__)


class CommandLogs:
    def __init__(self, brokers: str) -> None:
        self.brokers = brokers
        self._logs: dict[str, CommandLog] = {}
        self._lock = threading.Lock()
        self._admin: KafkaAdminClient | None = None
        self._admin_lock = threading.Lock()

    def partitions(self, topic: str, fresh: bool = False) -> list[int]:
        with self._lock:
            return self._log(topic).partitions(fresh=fresh)

    def end_offsets(self, topic: str) -> dict[int, int]:
        with self._lock:
            return self._log(topic).end_offsets()

    def behind(self, topic: str, offsets: dict[int, int]) -> dict[int, float | None]:
        with self._lock:
            return self._log(topic).behind(offsets)

    def resolve(
        self, topic: str, start: StartAt, until_ms: int | None
    ) -> tuple[dict[int, int], dict[int, int] | None]:
        """Concrete (start offsets, stop offsets) of a new deployment (see `positions`)."""
        with self._lock:
            return positions.resolve(self._log(topic), start, until_ms)

    def commit(self, group: str, topic: str, offsets: dict[int, int]) -> None:
        """Set the consumer group `group` at `offsets`; a broker that cannot is logged (the
        next pass commits again)."""
        try:
            results = self._admin_client().alter_group_offsets(
                group, {TopicPartition(topic, p): OffsetAndMetadata(o) for p, o in offsets.items()}
            )
        except KafkaError as exc:  # the broker may be starting: the next pass commits
            log.log(_level(exc.retriable), "committing the offsets of %s failed: %r", group, exc)
            return
        failed = {tp.partition: e for tp, e in results.items() if e.errno != 0}
        if failed:
            level = _level(all(e.retriable for e in failed.values()))
            names = {p: e.__name__ for p, e in failed.items()}
            log.log(level, "committing the offsets of %s failed: %s", group, names)

    def delete_group(self, group: str) -> None:
        try:
            self._admin_client().delete_groups([group])
        except KafkaError as exc:  # monitoring only: the broker forgets an empty group anyway
            log.warning("cannot delete the consumer group of %s: %s", group, exc)

    def close(self) -> None:
        with self._admin_lock:
            if self._admin is not None:
                self._admin.close()
                self._admin = None
        for command_log in self._logs.values():  # the runtime's threads have stopped
            command_log.close()

    def _log(self, topic: str) -> CommandLog:
        if topic not in self._logs:
            self._logs[topic] = CommandLog(self.brokers, topic)
        return self._logs[topic]

    def _admin_client(self) -> KafkaAdminClient:
        with self._admin_lock:
            if self._admin is None:
                self._admin = KafkaAdminClient(bootstrap_servers=self.brokers)
            return self._admin


def _level(retriable: bool) -> int:
    """A fresh broker answers CoordinatorNotAvailable until its offsets topic exists: the next
    pass commits, so a retriable failure is news, not a warning."""
    return logging.INFO if retriable else logging.WARNING
