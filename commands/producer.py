"""The producer side of the command log: idempotent, acks from all replicas, keyed by aggregate.

Keying by `aggregate_id` puts every command of one aggregate on one partition, in order: the
current-state projections rely on it.
"""

from __future__ import annotations

import threading
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.producer.future import FutureRecordMetadata

from commands.log import MAX_RECORD_BYTES
from core.envelope import Command, encode_command
from core.errors import CommandLogError


class CommandProducer:
    """Appends commands to the log; counts what was acknowledged and what failed."""

    def __init__(self, brokers: str, topic: str, **overrides: Any) -> None:
        self.topic = topic
        config: dict[str, Any] = {
            "bootstrap_servers": brokers,
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": 10,
            "batch_size": 256 * 1024,
            "max_request_size": MAX_RECORD_BYTES + 64 * 1024,
            "bootstrap_timeout_ms": 30_000,
        }
        config.update(overrides)
        try:
            self._producer = KafkaProducer(**config)
        except KafkaError as exc:
            raise CommandLogError(f"cannot reach the broker at {brokers}: {exc}") from exc
        self._lock = threading.Lock()
        self.acked = 0
        self.errors = 0
        self.last_error: str | None = None

    def send(self, command: Command) -> None:
        self.send_raw(command.aggregate_id.encode(), encode_command(command))

    def send_raw(
        self,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> FutureRecordMetadata:
        """Append bytes as they are: for replaying DLQ records, for planting bad input, and for
        the edge, which waits on the returned future before it answers."""
        future = self._producer.send(self.topic, key=key, value=value, headers=headers)
        future.add_callback(self._on_ack)
        future.add_errback(self._on_error)
        return future

    def _on_ack(self, _metadata: object) -> None:
        with self._lock:
            self.acked += 1

    def _on_error(self, exc: BaseException) -> None:
        with self._lock:
            self.errors += 1
            self.last_error = repr(exc)

    def flush(self, timeout_s: float | None = None) -> None:
        self._producer.flush(timeout=timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        self._producer.close(timeout=timeout_s)

    def __enter__(self) -> CommandProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
