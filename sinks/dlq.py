"""The DLQ sink: every rejected record goes to `<log topic>.dlq`, raw bytes unchanged, with the
reason and where it came from in headers.

The DLQ takes whatever the log takes: its record limit is the log's plus room for the headers.
A record larger than that (a row a sink could not write, a log whose limit was raised) keeps
its first bytes, and a `truncated` header gives the size it had.

A batch is flushed (acknowledged by the broker) before `write_batch` returns, so the epoch that
contains a reject cannot be snapshotted while the reject is still in a producer buffer. A send
that fails raises: the deployment restarts from its last snapshot rather than lose the record.

Rejects are logged as a summary, one line per step and reason per interval, not one line each:
a replay over a bad stretch would otherwise bury the log.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from clickhouse_connect.driver.client import Client
from kafka import KafkaProducer

from commands.log import MAX_RECORD_BYTES, RECONNECT_BACKOFF_MAX_MS, CommandLog
from core.envelope import Rejected
from core.errors import FailedAt
from core.outputs import Output
from sinks.output import Declared, OutputRefused, Results, SinkContext, SinkOutput, register_sink

log = logging.getLogger(__name__)

DLQ_SUFFIX = ".dlq"
MAX_DETAIL = 2000
#: room for the headers (the detail is capped at MAX_DETAIL) and the record's framing
HEADER_ROOM = 64 * 1024
DLQ_MAX_BYTES = MAX_RECORD_BYTES + HEADER_ROOM
DLQ_CONFIGS = {"max.message.bytes": str(DLQ_MAX_BYTES)}
#: seconds between two summary lines of the same step and reason
SUMMARY_EVERY_S = 10.0


def dlq_topic(log_topic: str) -> str:
    return log_topic + DLQ_SUFFIX


def ensure_dlq(brokers: str, log_topic: str) -> str:
    """Create the log's DLQ (one partition: rejects are few, and one order is easy to read),
    and give an older one the limit it needs."""
    topic = dlq_topic(log_topic)
    with CommandLog(brokers, topic) as dlq:
        dlq.ensure(partitions=1, configs=DLQ_CONFIGS)
        dlq.enforce(DLQ_CONFIGS)
    return topic


def headers_of(rejected: Rejected, source_topic: str, deployment: str) -> list[tuple[str, bytes]]:
    record = rejected.record
    pipeline, _, version = deployment.rpartition("_v")
    return [
        ("reason", rejected.reason.value.encode()),
        ("step", rejected.step.encode()),
        ("detail", rejected.detail[:MAX_DETAIL].encode(errors="replace")),
        ("source.topic", source_topic.encode()),
        ("source.partition", str(record.partition).encode()),
        ("source.offset", str(record.offset).encode()),
        ("source.timestamp", str(record.timestamp).encode()),
        ("pipeline", pipeline.encode()),
        ("version", version.encode()),
        ("deployment", deployment.encode()),
    ]


def fitted(
    key: bytes | None, value: bytes | None
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """Key and value cut to fit the DLQ's limit, and the header saying so if they were (an
    empty key where there is neither: the client refuses such a record)."""
    if key is None and value is None:
        return b"", None, []
    size = len(key or b"") + len(value or b"")
    if size <= MAX_RECORD_BYTES:
        return key, value, []
    key = key[: MAX_RECORD_BYTES // 2] if key is not None else None
    room = MAX_RECORD_BYTES - len(key or b"")
    value = value[:room] if value is not None else None
    return key, value, [("truncated", str(size).encode())]


class RejectSummary:
    """Counts rejects by (step, reason) and logs one line for each per interval: the first
    reject of an interval starts a timer, which logs the counts when it fires."""

    def __init__(self, deployment: str, every_s: float = SUMMARY_EVERY_S) -> None:
        self._deployment = deployment
        self._every_s = every_s
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}  # (step, reason) -> rejects
        self._examples: dict[tuple[str, str], str] = {}  # the first of each in the interval
        self._timer: threading.Timer | None = None

    def add(self, rejects: list[Rejected], source_topic: str) -> None:
        with self._lock:
            for r in rejects:
                kind = (r.step, r.reason.value)
                self._counts[kind] = self._counts.get(kind, 0) + 1
                if kind not in self._examples:
                    rec = r.record
                    where = f"{source_topic}[{rec.partition}]@{rec.offset}"
                    self._examples[kind] = f"{where}: {r.detail[:160]}"
            if self._counts and self._timer is None:
                self._timer = threading.Timer(self._every_s, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, {}
            examples, self._examples = self._examples, {}
            if self._timer is not None:
                self._timer.cancel()
            self._timer = None
        for (step, reason), count in sorted(counts.items()):
            log.warning(
                "%s: %d rejected at %s as %s in the last %.0fs (first: %s)",
                self._deployment, count, step, reason, self._every_s, examples[step, reason],
            )  # fmt: skip


class DlqWriter:
    """Writes rejects to the DLQ and waits until the broker has them all."""

    def __init__(self, brokers: str, source_topic: str, deployment: str) -> None:
        self._producer = KafkaProducer(
            bootstrap_servers=brokers,
            acks="all",
            enable_idempotence=True,
            max_request_size=DLQ_MAX_BYTES,
            linger_ms=5,
            reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
        )
        self._topic = dlq_topic(source_topic)
        self._source_topic = source_topic
        self._deployment = deployment
        self._summary = RejectSummary(deployment)

    def write(self, rejects: list[Rejected]) -> None:
        futures = []
        for rejected in rejects:
            record = rejected.record
            key, value, cut = fitted(record.key, record.value)
            headers = headers_of(rejected, self._source_topic, self._deployment) + cut
            futures.append(self._producer.send(self._topic, key=key, value=value, headers=headers))
        self._producer.flush()
        for rejected, future in zip(rejects, futures, strict=True):
            try:
                future.get(timeout=0)  # raises the send's error, if any
            except Exception as exc:
                record = rejected.record
                raise FailedAt(record.partition, record.offset, exc) from exc
        self._summary.add(rejects, self._source_topic)

    def close(self) -> None:
        self._summary.flush()
        self._producer.close(timeout=5)


class DlqSink(DynamicSink[Rejected]):
    def __init__(self, brokers: str, source_topic: str, deployment: str) -> None:
        self._brokers = brokers
        self._source_topic = source_topic
        self._deployment = deployment

        self._built: list[DlqWriter] = []

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _DlqPartition:
        writer = DlqWriter(self._brokers, self._source_topic, self._deployment)
        self._built.append(writer)
        return _DlqPartition(writer)

    def close_all(self) -> None:
        for writer in self._built:
            writer.close()


class _DlqPartition(StatelessSinkPartition[Rejected]):
    def __init__(self, writer: DlqWriter) -> None:
        self._writer = writer

    def write_batch(self, items: list[Rejected]) -> None:
        self._writer.write(items)

    def close(self) -> None:
        self._writer.close()


@register_sink
class DlqOutput(SinkOutput):
    """The dead-letter topic `<log topic>.dlq`: every reject of every step, raw bytes kept, the
    reason in headers. Every pipeline has it; no projection names it."""

    kind = "dlq"

    @classmethod
    def build(cls, declared: Declared) -> DlqOutput:
        raise OutputRefused(
            "steps", "the DLQ receives every pipeline's rejects; a projection cannot write it"
        )

    def prepare(self, client: Client, ctx: SinkContext) -> None:
        ensure_dlq(ctx.brokers, ctx.log_topic)

    def sink(self, ctx: SinkContext) -> DlqSink:
        return DlqSink(ctx.brokers, ctx.log_topic, ctx.deployment)

    def pick(self, produced: list[Output]) -> list[Rejected]:
        return [p for p in produced if isinstance(p, Rejected)]

    def stream(self, results: Results) -> Stream[Rejected]:
        return op.flat_map("rejects", results, _rejects)

    def target(self, deployment: str) -> str:
        return "<log topic>" + DLQ_SUFFIX


def _rejects(item: tuple[str, Any]) -> list[Rejected]:
    return item[1].rejects


DLQ = DlqOutput()
