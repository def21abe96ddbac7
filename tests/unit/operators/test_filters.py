"""The stateless filters and dedupe, each on its own."""

import gc
import hashlib

import msgspec
import pytest

from core.envelope import Envelope, Reason, Rejected
from core.outputs import Forwarded, Skipped
from operators.dedupe import Dedupe, DedupeParams
from operators.derive import MapFields, MapParams, SetFields, SetParams
from operators.forward import Forward, ForwardParams
from operators.fx import Fx, FxParams
from operators.redact import Redact, RedactParams
from operators.route import RouteFilter, RouteParams
from operators.select import ConditionParams, DropIf, Select
from operators.upcast import Upcast, UpcastParams
from tests.unit.operators.helpers import env


def make(cls, params_cls, **params):
    return cls("step", msgspec.convert(params, params_cls))


def test_select_and_drop_if():
    paid, placed = env("order.paid"), env("order.placed")
    select = make(Select, ConditionParams, where={"type": "order.paid"})
    drop = make(DropIf, ConditionParams, where={"type": "order.paid"})
    assert select.apply(paid) is paid
    assert select.apply(placed) == Skipped("step", "filtered")
    assert drop.apply(paid) == Skipped("step", "filtered")
    assert drop.apply(placed) is placed


def test_set_and_map_derive_fields_without_touching_the_command():
    e = env(data={"amount": 3})
    out = make(SetFields, SetParams, fields={"channel": "web"}).apply(e)
    assert out.attrs == {"channel": "web"} and out.command is e.command and e.attrs == {}
    out = make(MapFields, MapParams, fields={"total": "data.amount", "gone": "data.nope"}).apply(e)
    assert out.attrs == {"total": 3}
    out = make(MapFields, MapParams, fields={"gone": "data.nope"}, default=0).apply(e)
    assert out.attrs == {"gone": 0}
    with pytest.raises(ValueError, match="cannot be a derived field"):
        make(SetFields, SetParams, fields={"type": 1})


def test_redact_hashes_or_drops_and_leaves_the_original_alone():
    data = {"email": "a@b.c", "card": {"number": "4111", "brand": "visa"}}
    e = env(data=data)
    hashed = make(Redact, RedactParams, fields=["data.email", "data.card.number"], salt="s").apply(
        e
    )
    # salted SHA-256, cut to 32 hex digits: computed here with hashlib, not with the filter
    assert hashed.command.data["email"] == hashlib.sha256(b"s" + b"a@b.c").hexdigest()[:32]
    assert hashed.command.data["card"] == {
        "number": hashlib.sha256(b"s4111").hexdigest()[:32],
        "brand": "visa",
    }
    unsalted = make(Redact, RedactParams, fields=["data.email"]).apply(e)
    assert unsalted.command.data["email"] == hashlib.sha256(b"a@b.c").hexdigest()[:32]
    again = make(Redact, RedactParams, fields=["data.email"], salt="s").apply(e)
    assert again.command.data["email"] == hashed.command.data["email"]  # stable: still groups
    dropped = make(Redact, RedactParams, fields=["data.card.number"], mode="drop").apply(e)
    assert dropped.command.data["card"] == {"brand": "visa"}
    assert e.command.data == data  # the original command is unchanged
    assert make(Redact, RedactParams, fields=["data.absent"]).apply(e) is e
    with pytest.raises(ValueError, match="not under data"):
        make(Redact, RedactParams, fields=["customer"])


def test_fx_converts_passes_and_rejects():
    fx = make(Fx, FxParams, rates={"USD": 1.0, "EUR": 1.1})
    assert fx.apply(env(data={"amount": 10, "currency": "EUR"})).attrs == {"amount_usd": 11.0}
    placed = env("order.placed", data={"currency": "EUR"})
    assert fx.apply(placed) is placed  # no amount: nothing to convert
    out = fx.apply(env(data={"amount": 10, "currency": "JPY"}))
    assert isinstance(out, Rejected) and out.reason is Reason.UNKNOWN_CURRENCY
    assert "'JPY'" in out.detail
    with pytest.raises(ValueError, match="target currency 'USD' needs a rate"):
        make(Fx, FxParams, rates={"EUR": 1.1})


def test_route_chooses_projections():
    route = make(
        RouteFilter,
        RouteParams,
        routes=[{"when": {"type": "order.paid"}, "to": ["payments", "audit"]}],
        default=["orders"],
    )
    assert route.apply(env("order.paid")).attrs["route"] == {"payments", "audit"}
    assert route.apply(env("order.placed")).attrs["route"] == {"orders"}
    assert route.targets == {"payments", "audit", "orders"}


def upcast_to_v3(data):
    return {**data, "upcast_by": "function"}


def test_upcast_chains_versions_and_rejects_what_it_cannot_map():
    upcast = make(
        Upcast,
        UpcastParams,
        rules=[
            {"type": "order.paid", "from": 1, "to": 2, "rename": {"amount": "total"}, "set": {"channel": "web"}},
            {"type": "order.paid", "from": 2, "to": 3, "drop": ["method"],
             "function": "tests.unit.operators.test_filters:upcast_to_v3"},
        ],
    )  # fmt: skip
    out = upcast.apply(env(data={"amount": 5, "method": "card"}))
    assert out.command.v == 3
    assert out.command.data == {"total": 5, "channel": "web", "upcast_by": "function"}
    current = env(v=3, data={"total": 1})
    assert upcast.apply(current) is current
    bad = upcast.apply(env(data={"method": "card"}))
    assert isinstance(bad, Rejected) and bad.reason is Reason.UPCAST_FAILED
    assert "'amount' to rename is missing" in bad.detail
    with pytest.raises(ValueError, match="must be above"):
        make(Upcast, UpcastParams, rules=[{"type": "t", "from": 3, "to": 2}])
    with pytest.raises(ValueError, match="does not name a function"):
        make(Upcast, UpcastParams, rules=[{"type": "t", "from": 1, "to": 2, "function": "nope:x"}])


def test_forward_writes_json_keyed_by_aggregate():
    out = make(Forward, ForwardParams).apply(env(data={"a": 1}, attrs={"usd": 2}, offset=4))
    assert isinstance(out, Forwarded)
    assert out.key == b"o-1" and out.offset == 4
    doc = msgspec.json.decode(out.value)
    assert doc["data"] == {"a": 1} and doc["attrs"] == {"usd": 2} and doc["type"] == "order.paid"


def test_dedupe_drops_repeats_and_stays_bounded():
    dedupe = make(Dedupe, DedupeParams, ttl="10s", max_keys=100)
    state = dedupe.restore(None)
    first = [env(id_=f"id{i}", ts=i * 1000, offset=i) for i in range(5)]
    assert dedupe.process(state, first) == first
    again = dedupe.process(state, [env(id_="id3", ts=5000, offset=9)])
    assert again == [Skipped("step", "deduplicated")]
    # survives a restart through its snapshot
    state = dedupe.restore(dedupe.snapshot(state))
    assert dedupe.process(state, [env(id_="id4", ts=5000)]) == [Skipped("step", "deduplicated")]
    # ids older than the ttl (in event time) are forgotten
    dedupe.process(state, [env(id_="late-clock", ts=60_000)])
    assert dedupe.process(state, [env(id_="id0", ts=60_000)]) != [Skipped("step", "deduplicated")]
    # and never more than max_keys
    dedupe.process(state, [env(id_=f"n{i}", ts=60_000 + i) for i in range(500)])
    assert len(state) == 100
    assert dedupe.process(state, [env(id_="n499", ts=61_000)]) == [Skipped("step", "deduplicated")]
    assert dedupe.process(state, [env(id_="n0", ts=61_000)]) != [Skipped("step", "deduplicated")]


def test_dedupe_state_and_envelopes_stay_out_of_the_cycle_collector():
    """What keeps full collections cheap: nothing per record or per id is tracked."""
    dedupe = make(Dedupe, DedupeParams, max_keys=1000)
    state = dedupe.restore(None)
    batch = [env(id_=f"id{i}", ts=1000 + i) for i in range(2000)]
    dedupe.process(state, batch)
    assert len(state) == 1000
    # the compiled index: flat arrays of its own, no Python object in it, untracked itself
    assert not gc.is_tracked(state) and gc.get_referents(state) == []
    assert not any(gc.is_tracked(e) or gc.is_tracked(e.command) for e in batch)


def test_dedupe_snapshot_is_not_changed_by_later_batches():
    dedupe = make(Dedupe, DedupeParams)
    state = dedupe.restore(None)
    dedupe.process(state, [env(id_="a")])
    snap = dedupe.snapshot(state)
    dedupe.process(state, [env(id_="b")])
    restored = dedupe.restore(snap)
    assert len(restored) == 1
    assert dedupe.process(restored, [env(id_="b")]) == [env(id_="b")]
    assert dedupe.process(restored, [env(id_="a")]) == [Skipped("step", "deduplicated")]


def test_envelopes_keep_their_record():
    e = env()
    assert isinstance(make(SetFields, SetParams, fields={"k": 1}).apply(e), Envelope)
    assert make(SetFields, SetParams, fields={"k": 1}).apply(e).record is e.record


def test_dedupe_lets_a_checked_dlq_replay_through_once():
    from core.envelope import LogRecord

    dedupe = make(Dedupe, DedupeParams)
    state = dedupe.restore(None)
    original = env(id_="x")
    dedupe.process(state, [original])
    # The header alone is a claim anyone can make: without the source's check it is a repeat.
    claimed = Envelope(
        LogRecord(0, 5, 0, b"o-1", b"", [("replayed-from-dlq", b"17")]), original.command
    )
    assert dedupe.process(state, [claimed]) == [Skipped("step", "deduplicated")]
    checked = Envelope(
        LogRecord(0, 6, 0, b"o-1", b"", [("replayed-from-dlq", b"17")], replayed_from=17),
        original.command,
    )
    assert dedupe.process(state, [checked]) == [checked]
    assert dedupe.process(state, [checked]) == [Skipped("step", "deduplicated")]


def test_dedupe_sends_a_different_command_reusing_an_id_to_the_dlq():
    from core.envelope import LogRecord

    dedupe = make(Dedupe, DedupeParams)
    state = dedupe.restore(None)
    first = Envelope(LogRecord(0, 1, 0, b"o-1", b'{"a":1}'), env(id_="x").command)
    same = Envelope(LogRecord(0, 2, 0, b"o-1", b'{"a":1}'), env(id_="x").command)
    other = Envelope(LogRecord(0, 3, 0, b"o-1", b'{"a":2}'), env(id_="x").command)
    out = dedupe.process(state, [first, same, other])
    assert out[:2] == [first, Skipped("step", "deduplicated")]
    assert out[2].reason == Reason.ID_CONFLICT and out[2].record.offset == 3
    # the content hash survives a snapshot; an old snapshot (ids only) counts repeats only
    restored = dedupe.restore(dedupe.snapshot(state))
    assert dedupe.process(restored, [other])[0].reason == Reason.ID_CONFLICT
    hashes, _, times, newest = dedupe.snapshot(state)
    old = dedupe.restore((hashes, times, newest))
    assert dedupe.process(old, [other]) == [Skipped("step", "deduplicated")]


def test_dedupe_snapshot_of_a_wrapped_ring_restores_the_same_ids():
    dedupe = make(Dedupe, DedupeParams, max_keys=10)
    state = dedupe.restore(None)
    dedupe.process(state, [env(id_=f"i{n}", ts=n) for n in range(25)])
    assert state.head != 0  # the ring has wrapped
    restored = dedupe.restore(dedupe.snapshot(state))
    assert dedupe.snapshot(restored) == dedupe.snapshot(state) and len(restored) == 10
    assert list(restored.times[: len(restored)]) == list(range(15, 25))
