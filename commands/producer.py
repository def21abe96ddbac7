"""The producer side of the command log: idempotent, acks from all replicas, keyed by aggregate.

Keying by `aggregate_id` puts every command of one aggregate on one partition, in order: the
current-state projections rely on it.

kafka-python's idempotent producer can wedge: when batches it had sent once expire (a broker
down longer than `delivery_timeout_ms`), it drops its producer id and never asks for a new one
(its state stays READY, and only UNINITIALIZED asks), so from then on no record is sent, acked
or expired, and `flush()` waits forever. Every record completes within `delivery_timeout_ms` by
the client's own contract, so one that has not after that plus a margin means the client is
wedged: a watchdog then replaces it with a new one (closing the old fails what it held, which
counts as errors). The edge and `cqrs produce` both rely on this.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.producer.future import FutureRecordMetadata

from commands.log import MAX_RECORD_BYTES, RECONNECT_BACKOFF_MAX_MS
from core.envelope import Command, encode_command
from core.errors import CommandLogError

log = logging.getLogger(__name__)

#: kafka-python's default: how long a record may take from `send` to acknowledged or failed
DEFAULT_DELIVERY_TIMEOUT_MS = 120_000
#: beyond the delivery timeout, how long the watchdog waits for a record to complete
STALL_MARGIN_S = 5.0


class CommandProducer:
    """Appends commands to the log; counts what was acknowledged and what failed, and replaces
    a wedged client (see the module's docstring)."""

    def __init__(self, brokers: str, topic: str, **overrides: Any) -> None:
        self.topic = topic
        self._config: dict[str, Any] = {
            "bootstrap_servers": brokers,
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": 10,
            "batch_size": 256 * 1024,
            "max_request_size": MAX_RECORD_BYTES + 64 * 1024,
            "bootstrap_timeout_ms": 30_000,
            "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
        }
        self._config.update(overrides)
        self._producer = self._connect()
        self._lock = threading.Lock()
        self.acked = 0
        self.errors = 0
        self.last_error: str | None = None
        self._generation = 0
        self._outstanding = 0
        self._progress_at = time.monotonic()
        delivery_ms = self._config.get("delivery_timeout_ms", DEFAULT_DELIVERY_TIMEOUT_MS)
        self.stall_after_s = delivery_ms / 1000 + STALL_MARGIN_S
        self._closed = threading.Event()
        self._watchdog = threading.Thread(
            target=self._watch, name=f"producer-watchdog-{topic}", daemon=True
        )
        self._watchdog.start()

    def _connect(self) -> KafkaProducer:
        try:
            return KafkaProducer(**self._config)
        except KafkaError as exc:
            brokers = self._config["bootstrap_servers"]
            raise CommandLogError(f"cannot reach the broker at {brokers}: {exc}") from exc

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
        with self._lock:
            if self._outstanding == 0:
                self._progress_at = time.monotonic()
            self._outstanding += 1
            generation = self._generation
        try:
            future = self._producer.send(self.topic, key=key, value=value, headers=headers)
        except BaseException:
            self._settled(generation)
            raise
        future.add_callback(self._on_ack, generation)
        future.add_errback(self._on_error, generation)
        return future

    def _on_ack(self, generation: int, _metadata: object) -> None:
        with self._lock:
            if generation == self._generation:
                self.acked += 1
                self._progress()

    def _on_error(self, generation: int, exc: BaseException) -> None:
        with self._lock:
            if generation == self._generation:
                self.errors += 1
                self.last_error = repr(exc)
                self._progress()

    def _settled(self, generation: int) -> None:
        with self._lock:
            if generation == self._generation:
                self._progress()

    def _progress(self) -> None:
        """One record completed (the lock is held). A replaced client's records were counted
        as failed when it was replaced: what they do later is not counted again."""
        self._outstanding -= 1
        self._progress_at = time.monotonic()

    @property
    def stalled(self) -> bool:
        """Records are waiting and none completed for longer than the client allows."""
        with self._lock:
            waited = time.monotonic() - self._progress_at
            return self._outstanding > 0 and waited > self.stall_after_s

    def _watch(self) -> None:
        while not self._closed.wait(1.0):
            if self.stalled:
                self._replace()

    def _replace(self) -> None:
        """A new client in place of the wedged one (made here, off the senders' threads: it
        waits for the broker); the old one is closed at once, failing what it still held."""
        try:
            fresh = self._connect()
        except CommandLogError as exc:
            log.warning("the producer is wedged and the broker unreachable: %s", exc)
            return
        with self._lock:
            old, self._producer = self._producer, fresh
            stuck, self._outstanding = self._outstanding, 0
            self._generation += 1
            self.errors += stuck
            self.last_error = f"{stuck} records stuck in a wedged Kafka client, not delivered"
        log.warning(
            "no record completed in %.0f s (%d waiting): the Kafka client was replaced",
            self.stall_after_s,
            stuck,
        )
        try:
            old.close(timeout=0)
        except KafkaTimeoutError:
            # close() flushes first, which a wedged client never does: stop its I/O thread
            old._sender.force_close()

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait until every record sent is acknowledged or failed: in slices, so a client the
        watchdog replaces meanwhile does not hold this forever."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            with self._lock:
                if self._outstanding <= 0:
                    return
                producer = self._producer
            left = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if left <= 0:
                raise KafkaTimeoutError(f"{self._outstanding} records not delivered in time")
            with contextlib.suppress(KafkaTimeoutError):
                producer.flush(timeout=left)

    def close(self, timeout_s: float = 30.0) -> None:
        self._closed.set()
        self._producer.close(timeout=timeout_s)

    def __enter__(self) -> CommandProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
