import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from core.envelope import Envelope, LogRecord, Reason, Rejected
from core.outputs import Projected
from examples.orders.generator import OrderGenerator
from examples.orders.order_state import TABLE_COLUMNS, OrderRows, OrderState, OrderStateFilter
from operators.base import Keyed
from operators.registry import NoParams


def run(commands):
    """Fold commands through order_state then order_rows, as the dataflow does."""
    state_filter = OrderStateFilter("order_state", NoParams())
    rows = OrderRows("orders/order_rows", NoParams())
    states = state_filter.restore(None)
    envelopes = [Envelope(LogRecord(0, off, c.ts, None, b""), c) for off, c in enumerate(commands)]
    outputs = []
    for out in state_filter.process(states, envelopes):
        outputs.append(rows.apply(out) if isinstance(out, Envelope) else out)
    return states, outputs


def life_of_one_order(n=400):
    commands = OrderGenerator(seed=5).take(n)
    order = next(c.aggregate_id for c in reversed(commands) if c.type == "order.shipped")
    return [c for c in commands if c.aggregate_id == order]


def test_rows_follow_the_order_and_close_it():
    life = life_of_one_order()
    states, outputs = run(life)
    assert [o.row[4] for o in outputs] == ["placed", "paid", "shipped"]
    assert all(isinstance(o, Projected) for o in outputs)
    assert states == {}  # closed orders are forgotten
    last = dict(zip([c for c, _ in TABLE_COLUMNS], outputs[-1].row, strict=True))
    placed, paid, shipped = life
    assert last["customer_id"] == placed.data["customer_id"]
    assert last["paid_amount"] == paid.data["amount"]
    assert last["carrier"] == shipped.data["carrier"]
    assert last["placed_at"] == placed.ts
    assert last["updated_at"] == shipped.ts
    assert last["version"] == 2  # the log offset of its last command
    expected_amount = round(sum(i["qty"] * i["unit_price"] for i in placed.data["items"]), 2)
    assert last["amount"] == expected_amount == paid.data["amount"]


def test_accepted_commands_carry_the_order_state():
    placed, paid, _ = life_of_one_order()
    f = OrderStateFilter("order_state", NoParams())
    out = f.process(
        f.restore(None),
        [Envelope(LogRecord(0, i, 0, None, b""), c) for i, c in enumerate([placed, paid])],
    )
    assert [o.attrs["order"].status for o in out] == ["placed", "paid"]
    assert out[1].attrs["order"].region == placed.data["region"]


def test_commands_out_of_life_are_rejected_with_reason():
    placed, paid, shipped = life_of_one_order()
    _, outputs = run([paid])
    assert isinstance(outputs[0], Rejected)
    assert outputs[0].reason is Reason.INVALID_TRANSITION
    assert "not open" in outputs[0].detail

    _, outputs = run([placed, shipped])
    assert isinstance(outputs[1], Rejected)
    assert "status 'placed'" in outputs[1].detail

    _, outputs = run([placed, placed])
    assert "already placed" in outputs[1].detail


def test_a_rejected_command_leaves_the_state_alone():
    placed, paid, _ = life_of_one_order()
    states, outputs = run([placed, placed, paid])
    assert [type(o).__name__ for o in outputs] == ["Projected", "Rejected", "Projected"]
    assert next(iter(states.values())).status == "paid"


def test_snapshot_is_a_copy_later_batches_cannot_change():
    placed, paid, _ = life_of_one_order()
    f = OrderStateFilter("order_state", NoParams())
    state = f.restore(None)
    f.process(state, [Envelope(LogRecord(0, 0, 0, None, b""), placed)])
    snap = f.snapshot(state)
    f.process(state, [Envelope(LogRecord(0, 1, 0, None, b""), paid)])
    assert isinstance(snap[placed.aggregate_id], OrderState)
    assert snap[placed.aggregate_id].status == "placed"
    assert f.restore(snap)[placed.aggregate_id].status == "placed"


_POOL = OrderGenerator(seed=11).take(60)
_BROKEN = [
    msgspec.structs.replace(_POOL[0], data={}),  # raises in apply: filter_error
    msgspec.structs.replace(_POOL[0], type="order.refunded"),  # not handled: rejected
    *[msgspec.structs.replace(c, data={}) for c in _POOL if c.type != "order.placed"][:1],
]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, len(_POOL) + len(_BROKEN) - 1), max_size=80),
    st.booleans(),
)
def test_the_inlined_fold_equals_keyed_process_over_step(picks, with_attrs):
    """`OrderStateFilter.process` (inlined) against the general `Keyed.process` over `step`:
    the same outputs (rejects and failures included) and the same state, in any order."""
    commands = [(_POOL + _BROKEN)[i] for i in picks]
    attrs = {"route": ("orders",)} if with_attrs else {}
    envelopes = [
        Envelope(LogRecord(0, off, c.ts, None, b""), c, dict(attrs))
        for off, c in enumerate(commands)
    ]
    f = OrderStateFilter("order_state", NoParams())
    fast, general = f.restore(None), f.restore(None)
    assert f.process(fast, envelopes) == Keyed.process(f, general, envelopes)
    assert fast == general
    for out in f.process(f.restore(None), envelopes):
        if isinstance(out, Envelope) and out.command.type == "order.placed":
            items = out.command.data["items"]
            assert out.attrs["order"].quantity == sum(i["qty"] for i in items)
            assert out.attrs["order"].amount == round(
                sum(i["qty"] * i["unit_price"] for i in items), 2
            )
            assert out.attrs.keys() == {*attrs, "order"}
