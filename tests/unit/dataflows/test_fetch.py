"""The compiled record reader gives what kafka-python's own `PartitionRecords` gives, take by
take (records, position, errors), on generated fetch responses: every codec, keys, values and
header values null, empty or binary, CreateTime and LogAppendTime, offset gaps, a fetch from
the middle of a batch, transactions committed and aborted under both isolation levels, control
batches, legacy batches; and on corrupted bytes, where it must fail as kafka-python fails."""

import inspect
import struct
from collections import namedtuple

import kafka
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka import KafkaConsumer
from kafka.consumer.fetcher import Fetcher
from kafka.protocol.consumer import IsolationLevel
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.legacy_records import LegacyRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords
from kafka.record.util import calc_crc32c
from kafka.serializer import Deserializer
from kafka.structs import TopicPartition

from core.envelope import LogRecord
from dataflows.fetch import CompiledPartitionRecords, install

TP = TopicPartition("log", 4)
Aborted = namedtuple("Aborted", "producer_id first_offset")
_CRC_AT, _ATTRIBUTES_AT, _MAX_TS_AT = 17, 21, 35
_CONTROL, _LOG_APPEND_TIME = 0x20, 0x08


class _AsIs(Deserializer):
    def deserialize(self, topic, headers, data):
        return data


def test_the_hook_point_keeps_its_shape():
    """What dataflows.fetch relies on in kafka-python: if this fails, kafka-python changed
    under its exact pin; read dataflows/fetch.py again against the new version."""
    assert kafka.__version__ == "3.0.12"
    assert "self.PartitionRecords(fetch_offset, tp, records," in inspect.getsource(
        Fetcher._parse_fetched_data
    )
    assert list(inspect.signature(Fetcher.PartitionRecords.__init__).parameters) == [
        "self", "fetch_offset", "tp", "records", "key_deserializer", "value_deserializer",
        "check_crcs", "isolation_level", "aborted_transactions", "metric_aggregator", "on_drain",
    ]  # fmt: skip
    for name in ("take", "drain", "__bool__", "_maybe_raise_next_inline_exception"):
        assert callable(getattr(Fetcher.PartitionRecords, name))
    fetched = inspect.getsource(Fetcher._append)
    assert "part.take(max_records)" in fetched and "part.next_fetch_offset" in fetched
    assert {"_buffer", "_pos"} <= set(DefaultRecordBatch.__slots__)
    assert callable(DefaultRecordBatch._maybe_uncompress)
    # no broker at this address: the consumers are only built, never polled
    plain = KafkaConsumer(bootstrap_servers="127.0.0.1:1", api_version=(2, 8))
    decoding = KafkaConsumer(
        bootstrap_servers="127.0.0.1:1", api_version=(2, 8), key_deserializer=_AsIs()
    )
    try:
        install(plain)
        assert plain._fetcher.PartitionRecords is CompiledPartitionRecords
        with pytest.raises(ValueError, match="deserializers"):
            install(decoding)
    finally:
        plain.close()
        decoding.close()


_bytes = st.none() | st.just(b"") | st.binary(max_size=12)
_record = st.tuples(
    st.integers(1, 3),  # offset gap (compaction leaves holes)
    st.integers(-(2**20), 2**20),  # timestamp delta
    _bytes,
    _bytes,
    st.lists(st.tuples(st.text(max_size=4), _bytes), max_size=2),
)


@st.composite
def _batch_specs(draw: st.DrawFn) -> dict:
    kind = draw(st.sampled_from(["data", "data", "data", "commit", "abort", "legacy"]))
    transactional = kind in ("commit", "abort") or draw(st.booleans())
    return {
        "kind": kind,
        "records": draw(st.lists(_record, min_size=1, max_size=5)),
        "codec": draw(st.integers(0, 4)) if kind == "data" else 0,
        "producer_id": draw(st.sampled_from([1, 2])) if transactional else -1,
        "transactional": transactional,
        "log_append": draw(st.booleans()),
        "leader_epoch": draw(st.integers(0, 3)),
    }


def _build(spec: dict, base: int) -> tuple[bytes, int]:
    """A batch at offset `base` and the offset after it."""
    if spec["kind"] == "legacy":
        builder = LegacyRecordBatchBuilder(1, 0, 1 << 20)
        for n, (_, delta, key, value, _) in enumerate(spec["records"]):
            builder.append(base + n, 2**40 + abs(delta), key, value)
        return bytes(builder.build()), base + len(spec["records"])
    pid = spec["producer_id"]
    builder = DefaultRecordBatchBuilder(
        2, spec["codec"], spec["transactional"], pid, 0 if pid >= 0 else -1, 0 if pid >= 0 else -1,
        1 << 20,
    )  # fmt: skip
    delta = 0
    if spec["kind"] in ("commit", "abort"):
        marker = struct.pack(">hh", 0, 1 if spec["kind"] == "commit" else 0)
        builder.append(0, 2**40, marker, b"\x00\x00\x00\x00\x00\x00", [])
    else:
        for gap, ts, key, value, headers in spec["records"]:
            builder.append(delta, 2**40 + ts, key, value, headers)
            delta += gap
        delta -= spec["records"][-1][0]
    data = builder.build()
    data[0:8] = struct.pack(">q", base)
    data[12:16] = struct.pack(">i", spec["leader_epoch"])
    attributes = struct.unpack_from(">h", data, _ATTRIBUTES_AT)[0]
    if spec["kind"] in ("commit", "abort"):
        attributes |= _CONTROL
    if spec["log_append"]:
        attributes |= _LOG_APPEND_TIME
        data[_MAX_TS_AT : _MAX_TS_AT + 8] = struct.pack(">q", 2**41)
    data[_ATTRIBUTES_AT : _ATTRIBUTES_AT + 2] = struct.pack(">h", attributes)
    _seal(data)
    return bytes(data), base + delta + 1


def _seal(data: bytearray) -> None:
    data[_CRC_AT : _CRC_AT + 4] = struct.pack(">I", calc_crc32c(memoryview(data)[_ATTRIBUTES_AT:]))


def _outcome(cls: type, data: bytes, fetch_offset: int, takes: list[int], config: dict) -> list:
    """What each take gives: (records, position) or the class of the error it raised."""
    part = cls(fetch_offset, TP, MemoryRecords(data), **config)
    seen = []
    for n in takes:
        if not part:
            break
        try:
            got = part.take(n)
        except Exception as exc:
            seen.append(type(exc))
            break
        records = [
            r if isinstance(r, LogRecord)
            else LogRecord(r.partition, r.offset, r.timestamp, r.key, r.value, r.headers)
            for r in got
        ]  # fmt: skip
        seen.append((records, part.next_fetch_offset, part.leader_epoch))
    return seen


_config = st.fixed_dictionaries(
    {
        "check_crcs": st.booleans(),
        "isolation_level": st.sampled_from(list(IsolationLevel)),
    }
)


@st.composite
def _responses(draw: st.DrawFn) -> tuple[bytes, int, dict]:
    data, offset, first = b"", draw(st.integers(0, 2**40)), None
    for spec in draw(st.lists(_batch_specs(), min_size=1, max_size=4)):
        batch, after = _build(spec, offset)
        first = offset if first is None else first
        data, offset = data + batch, after + draw(st.integers(0, 2))
    config = draw(_config)
    config["aborted_transactions"] = [
        Aborted(pid, draw(st.integers(first, offset)))
        for pid in draw(st.lists(st.sampled_from([1, 2]), max_size=2, unique=True))
    ]
    return data, draw(st.integers(first, offset)), config


_takes = st.lists(st.integers(1, 7), min_size=1, max_size=8).map(lambda t: [*t, 10**6, 1])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(response=_responses(), takes=_takes)
def test_reads_as_kafka_python_reads(response, takes):
    data, fetch_offset, config = response
    expected = _outcome(Fetcher.PartitionRecords, data, fetch_offset, takes, config)
    assert _outcome(CompiledPartitionRecords, data, fetch_offset, takes, config) == expected


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    response=_responses(),
    damage=st.lists(st.tuples(st.integers(61), st.integers(0, 255)), min_size=1, max_size=4),
    seal=st.booleans(),
    takes=_takes,
)
def test_corrupt_bytes_fail_as_kafka_python_fails(response, damage, seal, takes):
    """Bytes overwritten in the first batch's records (and its CRC made right again, so that
    the reading is reached): the same records, then the same class of error, and nothing
    that kills the process."""
    data, fetch_offset, config = response
    first = bytearray(data)
    if first[16] != 2:  # a legacy batch: nothing of the compiled reader to fuzz
        return
    length = struct.unpack_from(">i", first, 8)[0] + 12
    for at, byte in damage:
        first[min(at, length - 1)] = byte
    if seal:
        _seal(memoryview(first)[:length])
    damaged = bytes(first)
    expected = _outcome(Fetcher.PartitionRecords, damaged, fetch_offset, takes, config)
    assert _outcome(CompiledPartitionRecords, damaged, fetch_offset, takes, config) == expected
