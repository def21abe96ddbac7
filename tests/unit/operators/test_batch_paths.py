"""Every batch path (`Decoder.batch`, a filter's `apply_batch`) gives exactly what its
per-record path gives, in order, rejects and their reasons included, over generated batches
that mix good commands with ones the step refuses or raises on. The executor falls back to the
per-record path when a batch path raises, so that is what is compared here too."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from core.envelope import Command, Envelope, LogRecord, encode_command
from examples.orders.generator import OrderGenerator
from operators.base import Stateless
from operators.decode import Decoder

ORDERS = OrderGenerator(seed=3).take(200)

_good = st.sampled_from(ORDERS).map(encode_command)
_bad_value = st.one_of(
    st.none(),
    st.just(b""),
    st.binary(max_size=40),  # mostly not JSON, sometimes not UTF-8
    st.just(b'{"id":"c","type":"t","aggregate_id":"a","ts":-1,"v":1,"data":{}}'),  # shape
    st.just(b'{"id":"c","type":"t","aggregate_id":"a","ts":1,"v":1,"data":{}} {}'),  # trailing
    st.just(b"[" * 2000),  # deeper than the decoder nests
    st.just(b'{"id":"c","type":"t","aggregate_id":"a","ts":1,"v":1,"data":{"k":"' + b"x" * 300),
)
_value = st.one_of(_good, _good, _good, _bad_value)


def records(values: list[bytes | None]) -> list[LogRecord]:
    return [LogRecord(0, n, 1_767_225_600_000, b"k", v) for n, v in enumerate(values)]


def per_record(step: Stateless, batch: list[Envelope]) -> list[Any]:
    """What the executor gave before batch paths: `apply` a command at a time, guarded."""
    out = []
    for e in batch:
        try:
            out.append(step.apply(e))
        except Exception as exc:
            out.append(step.failed(e, exc))
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(_value, max_size=30), st.sampled_from([200, 1024 * 1024]))
def test_decoding_a_poll_at_once_equals_decoding_each_record(values, max_bytes):
    decoder = Decoder(max_bytes)
    polled = records(values)
    each = [decoder(r) for r in polled]
    envelopes, rejects = decoder.batch(polled)
    assert envelopes == [d for d in each if type(d) is Envelope]
    assert rejects == [d for d in each if type(d) is not Envelope]


def test_a_poll_of_commands_is_decoded_in_one_call(monkeypatch):
    """The fast path is taken (not only the fallback), and what it gives is the record's."""
    polled = records([encode_command(c) for c in ORDERS[:20]])
    monkeypatch.setattr(Decoder, "__call__", None)  # the per-record path would raise
    envelopes, rejects = Decoder().batch(polled)
    assert rejects == []
    assert [e.record for e in envelopes] == polled
    assert [e.command for e in envelopes] == ORDERS[:20]
    assert all(type(e.command) is Command and e.attrs == {} for e in envelopes)
