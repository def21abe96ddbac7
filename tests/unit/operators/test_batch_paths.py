"""Every batch path (`Decoder.batch`, a filter's `apply_batch`) gives exactly what its
per-record path gives, in order, rejects and their reasons included, over generated batches
that mix good commands with ones the step refuses or raises on. The executor falls back to the
per-record path when a batch path raises, so that is what is compared here too."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from core.envelope import Command, Envelope, LogRecord, encode_command
from core.outputs import Skipped
from dataflows.executor import _apply
from examples.orders.generator import OrderGenerator
from examples.orders.order_state import OrderRows, OrderState
from operators.base import Stateless
from operators.decode import Decoder
from operators.registry import NoParams
from operators.select import ConditionParams, DropIf, Select
from operators.validate import Validate, ValidateParams
from tests.unit.operators.helpers import env

ORDERS = OrderGenerator(seed=3).take(200)
SCHEMAS = "examples.orders.schemas:SCHEMAS"

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


def through_executor(step: Stateless, batch: list[Envelope]) -> list[Any]:
    """The batch path as the executor takes it, and that, when it did not raise, it is the
    per-record path's outputs (not only equal after the executor's fallback)."""
    try:
        fast = step.apply_batch(batch)
    except Exception:
        fast = None
    out = _apply(step, batch)
    if fast is not None:
        assert fast == out
    return out


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-5, 5) | st.sampled_from("abx"),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("xy"), inner),
    max_leaves=4,
)
_fields = st.dictionaries(st.sampled_from(["amount", "customer", "tags", "nested"]), _json)
_attrs = st.dictionaries(st.sampled_from(["order", "x"]), _json | st.just({"region": "eu"}))


@st.composite
def _envelope(draw: st.DrawFn) -> Envelope:
    offset = draw(st.integers(0, 9))
    command = Command(
        id=f"c{offset}",
        type=draw(st.sampled_from(["order.paid", "order.placed", "a"])),
        aggregate_id="o-1",
        ts=draw(st.integers(0, 5)),
        v=1,
        data=draw(_fields),
    )
    return Envelope(LogRecord(0, offset, 3, b"o-1", b""), command, draw(_attrs))


_paths = st.sampled_from(
    ["type", "ts", "log.offset", "data.amount", "data.customer", "data.tags", "data.nested.x",
     "order.region", "x", "x.y"]
)  # fmt: skip
_test = st.one_of(
    st.tuples(st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le", "contains"]), _json),
    st.tuples(st.sampled_from(["in", "not_in"]), st.lists(_json, max_size=3)),
    st.tuples(st.sampled_from(["startswith", "endswith"]), st.sampled_from(["a", "order."])),
    st.tuples(st.just("exists"), st.booleans()),
    st.tuples(st.just("matches"), st.sampled_from(["^a", "paid$", "[0-9]"])),
)
_condition = st.dictionaries(
    _paths, st.dictionaries(st.sampled_from(["t"]), _test).map(lambda d: dict(d.values())),
    min_size=1, max_size=3,
).filter(lambda c: all(c.values()))  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(_condition, st.lists(_envelope(), max_size=12), st.sampled_from([Select, DropIf]))
def test_a_condition_over_a_batch_equals_it_a_command_at_a_time(where, batch, kind):
    step = kind("s", ConditionParams(where))
    assert through_executor(step, batch) == per_record(step, batch)


def test_select_takes_its_batch_in_columns():
    batch = [env(type_=t, data={"amount": a}) for t, a in [("order.paid", 3), ("x", 9)]]
    where = {"type": "order.paid", "data.amount": {"gt": 2}, "order.region": {"ne": "us"}}
    step = Select("s", ConditionParams(where))
    step.apply = None  # the per-record path would raise
    assert step.apply_batch(batch) == [batch[0], Skipped("s", "filtered")]


@st.composite
def _order_command(draw: st.DrawFn) -> Envelope:
    """A command of the orders demo as logged, or one `validate` refuses for each reason it
    has: key, time, type, version, data, key field."""
    c = draw(st.sampled_from(ORDERS))
    key, log_time = c.aggregate_id.encode(), c.ts
    match draw(st.integers(0, 11)):
        case 0:
            key = draw(st.sampled_from([None, b"o-else"]))
        case 1:
            log_time = c.ts - 7_200_000
        case 2:
            c = msgspec.structs.replace(c, type="order.teleported")
        case 3:
            c = msgspec.structs.replace(c, v=2)
        case 4:
            c = msgspec.structs.replace(c, data={**c.data, draw(st.sampled_from(list(c.data))): -1})
        case 5:
            c = msgspec.structs.replace(c, data={**c.data, "order_id": "o-else"})
        case 6:
            c = msgspec.structs.replace(c, data={})
    return Envelope(LogRecord(0, 1, log_time, key, b""), c)


@settings(max_examples=200, deadline=None)
@given(st.lists(_order_command(), max_size=12), st.booleans())
def test_validate_over_a_batch_equals_it_a_command_at_a_time(batch, require_key):
    step = Validate("validate", ValidateParams(SCHEMAS, require_key=require_key))
    assert through_executor(step, batch) == per_record(step, batch)


_state = st.builds(
    OrderState,
    order_id=st.just("o-1"),
    customer_id=st.just("c-1"),
    region=st.just("eu-west"),
    currency=st.just("EUR"),
    status=st.sampled_from(["placed", "paid"]),
    item_count=st.integers(1, 3),
    quantity=st.integers(1, 9),
    amount=st.floats(0, 99),
    placed_at=st.integers(0, 9),
    updated_at=st.integers(0, 9),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(_envelope(), st.one_of(_state, _json)), max_size=8))
def test_order_rows_over_a_batch_equals_it_a_command_at_a_time(pairs):
    batch = [msgspec.structs.replace(e, attrs={"order": order}) for e, order in pairs]
    step = OrderRows("orders", NoParams())
    assert through_executor(step, batch) == per_record(step, batch)
