"""The source's consumers read fetched record batches with the compiled reader.

kafka-python reads a record batch a field at a time in Python and builds two objects per record
before the source builds its own `LogRecord`: ~6 µs of the pipeline's ~22 µs a command
(`python -m bench.profile`). `install` gives one consumer a `PartitionRecords` whose batches of
message format v2 are read in one compiled call straight into `LogRecord`s, so its `poll`
returns those. The rest stays kafka-python's: fetching, positions, decompression (its batch
object's), and every error: a batch the compiled reader refuses is read again by kafka-python,
which raises what it always raised (or reads it: then its records stand), after the records
before the fault.

What a batch gives follows the protocol (KIP-98, read_committed): a batch whose CRC fails
raises; a control batch (a transaction's commit or abort marker) gives nothing; a batch of a
transaction the fetch response lists as aborted gives nothing, from the transaction's first
offset until its abort marker; records before the fetch offset (a fetch from the middle of a
batch) are left out; the position after the last batch is that batch's last offset + 1, so a
batch whose last records compaction removed is not fetched again.

This hooks kafka-python's internals (`Fetcher.PartitionRecords`, the batch's `_buffer` and
`_pos` after `_maybe_uncompress`): pyproject.toml pins kafka-python exactly, and
tests/unit/dataflows/test_fetch.py fails when the hook changes shape.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from itertools import dropwhile
from operator import attrgetter
from typing import Any

from kafka import KafkaConsumer
from kafka.consumer.fetcher import Fetcher
from kafka.errors import CorruptRecordError
from kafka.protocol.consumer import IsolationLevel
from operators._native import read_batch

from core.envelope import LogRecord

#: the smallest offset: no record is left out
_NO_SKIP = -(2**63)
_LOG_APPEND_TIME = 1


class CompiledPartitionRecords(Fetcher.PartitionRecords):
    """One fetch response's records for a partition, a batch at a time: `take` slices lists
    of `LogRecord`s instead of pulling records one by one through generators."""

    def __init__(self, fetch_offset: int, tp: Any, records: Any, **config: Any) -> None:
        super().__init__(fetch_offset, tp, records, **config)
        self._skip_below = fetch_offset
        self._committed_only = config.get("isolation_level") == IsolationLevel.READ_COMMITTED
        first = attrgetter("first_offset")
        self._aborted = deque(sorted(config.get("aborted_transactions") or (), key=first))
        self._aborting: set[int] = set()  # producers with an aborted transaction open here
        self._batch: list[LogRecord] = []
        self._at = 0
        self.record_iterator = self._batches(records)

    def take(self, n: int | None = None) -> list[LogRecord]:
        self._maybe_raise_next_inline_exception()
        taken: list[LogRecord] = []
        try:
            while n is None or len(taken) < n:
                if self._at < len(self._batch):
                    end = len(self._batch) if n is None else self._at + n - len(taken)
                    chunk = self._batch[self._at : end]
                    self._at += len(chunk)
                    taken += chunk
                    self.next_fetch_offset = chunk[-1].offset + 1
                elif self.record_iterator is None:
                    break
                else:
                    batch = next(self.record_iterator, None)
                    if batch is None:  # the batches are over: drained, or ended by an error
                        break
                    self._batch, self._at = batch, 0
        except Exception as exc:
            if not taken:
                raise
            self._next_inline_exception = exc  # raised by the next take, as kafka-python does
        return taken

    def drain(self) -> None:
        self._batch, self._at = [], 0
        super().drain()

    def _batches(self, records: Any) -> Iterator[list[LogRecord]]:
        """Each batch's records (an empty list for a batch that gives none); the position
        moves past batches that give none, and past the last batch at the end."""
        last = None
        while (batch := records.next_batch()) is not None:
            last = batch
            self.bytes_read += batch.size_in_bytes
            if self.check_crcs and not batch.validate_crc():
                raise CorruptRecordError(
                    f"{self.topic_partition}: the record batch at offset {batch.base_offset} "
                    "fails its CRC check"
                )
            if batch.magic < 2:
                yield from self._by_client(batch)
                continue
            self.leader_epoch = batch.leader_epoch
            if self._gives_nothing(batch):
                self.next_fetch_offset = batch.next_offset
                yield []
                continue
            batch._maybe_uncompress()
            append_time = batch.max_timestamp if batch.timestamp_type == _LOG_APPEND_TIME else None
            read = read_batch(
                LogRecord,
                bytes(memoryview(batch._buffer)[batch._pos :]),
                self.topic_partition.partition,
                batch.base_offset,
                batch.first_timestamp,
                append_time,
                batch.records_count,
                self._skip_below,
            )
            if read is None:  # not well-formed: kafka-python's reading decides
                yield from self._by_client(batch)
                continue
            kept, last_offset = read
            self.records_read += len(kept)
            yield self._kept(kept, last_offset)
        if last is not None and last.magic >= 2:
            self.next_fetch_offset = last.next_offset
        self.drain()

    def _gives_nothing(self, batch: Any) -> bool:
        """A control batch, or (read_committed) a batch of an aborted transaction; on the way,
        the aborted transactions that started by this batch open, and an abort marker closes
        its producer's."""
        if self._committed_only and batch.has_producer_id():
            while self._aborted and self._aborted[0].first_offset <= batch.last_offset:
                self._aborting.add(self._aborted.popleft().producer_id)
            if batch.is_control_batch:
                marker = next(iter(batch), None)
                if marker is not None and marker.abort:
                    self._aborting.discard(batch.producer_id)
            elif batch.is_transactional and batch.producer_id in self._aborting:
                return True
        return batch.is_control_batch

    def _by_client(self, batch: Any) -> Iterator[list[LogRecord]]:
        """kafka-python's own reading of a batch (a legacy one, or one the compiled reader
        refused): the records it reads, then the error it raises, if it does."""
        partition = self.topic_partition.partition
        read: list[LogRecord] = []
        error = None
        try:
            for r in batch:
                if self.check_crcs and not r.validate_crc():  # legacy records carry a CRC
                    raise CorruptRecordError(
                        f"{self.topic_partition}: the record at offset {r.offset} fails its "
                        "CRC check"
                    )
                read.append(LogRecord(partition, r.offset, r.timestamp, r.key, r.value, r.headers))
        except Exception as exc:
            error = exc
        self.records_read += len(read)
        last_offset = read[-1].offset if read else None
        if self._skip_below != _NO_SKIP:
            read = list(dropwhile(lambda r: r.offset < self._skip_below, read))
        read = self._kept(read, last_offset)
        if read:
            yield read
        if error is not None:
            raise error

    def _kept(self, records: list[LogRecord], last_offset: int | None) -> list[LogRecord]:
        """A batch's records from the fetch offset on: the first kept ends the leaving out;
        a batch left out whole still moves the position past its records."""
        if records:
            self._skip_below = _NO_SKIP
        elif last_offset is not None:
            self.next_fetch_offset = last_offset + 1
        return records


def install(consumer: KafkaConsumer) -> None:
    """Make `consumer`'s polls give `LogRecord`s read by the compiled reader. Only for a
    consumer without deserializers: the records' keys and values are the log's bytes."""
    fetcher = consumer._fetcher
    config = fetcher.config
    if config["key_deserializer"] is not None or config["value_deserializer"] is not None:
        raise ValueError("the compiled reader gives the log's bytes: no deserializers")
    fetcher.PartitionRecords = CompiledPartitionRecords
