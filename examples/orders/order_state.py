"""The orders aggregate: `order_state` folds each order's commands into its state, and
`order_rows` projects that state into the `orders` table.

The state lives per order until the order is closed (shipped or cancelled), then the key is
forgotten, so memory holds open orders only. A command that does not fit the order's life (paid
before placed, shipped twice) is rejected. Every row carries the log offset as its version: the
table is a ReplacingMergeTree, so a replay writes the same rows with the same versions and the
newest per order wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter

import msgspec

from core.envelope import Envelope, Reason
from core.outputs import Output, Projected
from core.schema import Table
from examples.orders import schemas
from operators.base import Keyed, Stateless
from operators.registry import NoParams, register_filter

TABLE_COLUMNS = (
    ("order_id", "String"),
    ("customer_id", "String"),
    ("region", "LowCardinality(String)"),
    ("currency", "LowCardinality(String)"),
    ("status", "LowCardinality(String)"),
    ("item_count", "UInt16"),
    ("quantity", "UInt32"),
    ("amount", "Float64"),
    ("paid_amount", "Float64"),
    ("payment_method", "LowCardinality(String)"),
    ("carrier", "LowCardinality(String)"),
    ("cancel_reason", "LowCardinality(String)"),
    ("placed_at", "DateTime64(3, 'UTC')"),
    ("updated_at", "DateTime64(3, 'UTC')"),
    ("version", "UInt64"),
)


class OrderState(msgspec.Struct, frozen=True, gc=False):
    """An open order (or the one a command just closed). `gc=False`: it holds only strings
    and numbers, so the cycle collector has no reason to walk the states of every open order.
    """

    order_id: str
    customer_id: str
    region: str
    currency: str
    status: str
    item_count: int
    quantity: int
    amount: float
    placed_at: int
    updated_at: int
    paid_amount: float = 0.0
    payment_method: str = ""
    carrier: str = ""
    cancel_reason: str = ""

    def row(self, version: int) -> tuple[object, ...]:
        return (
            self.order_id,
            self.customer_id,
            self.region,
            self.currency,
            self.status,
            self.item_count,
            self.quantity,
            self.amount,
            self.paid_amount,
            self.payment_method,
            self.carrier,
            self.cancel_reason,
            self.placed_at,
            self.updated_at,
            version,
        )


# Which statuses each command may follow; the status it leads to.
_ALLOWED = {
    schemas.PAID: ({"placed"}, "paid"),
    schemas.SHIPPED: ({"paid"}, "shipped"),
    schemas.CANCELLED: ({"placed", "paid"}, "cancelled"),
}
_CLOSED = {"shipped", "cancelled"}
_record = attrgetter("record")


def apply(state: OrderState | None, envelope: Envelope) -> OrderState | str:
    """The order's next state, or why the command does not apply to it."""
    command = envelope.command
    data = command.data
    if command.type == schemas.PLACED:
        if state is not None:
            return f"order {command.aggregate_id} was already placed"
        # Built positionally and summed in one loop: this runs for every order placed.
        quantity = amount = 0
        for item in data["items"]:
            qty = item["qty"]
            quantity += qty
            amount += qty * item["unit_price"]
        ts = command.ts
        return OrderState(
            command.aggregate_id,
            data["customer_id"],
            data["region"],
            data["currency"],
            "placed",
            len(data["items"]),
            quantity,
            round(amount, 2),
            ts,
            ts,
        )
    allowed = _ALLOWED.get(command.type)
    if allowed is None:
        return f"order_state does not handle {command.type!r}"
    if state is None:
        return (
            f"{command.type} for order {command.aggregate_id}, which is not open "
            f"(never placed, or already closed)"
        )
    sources, target = allowed
    if state.status not in sources:
        return f"{command.type} for order {command.aggregate_id} in status {state.status!r}"
    updated_at = max(state.updated_at, command.ts)
    # Positional rather than `msgspec.structs.replace`: the state is rebuilt for every command.
    s = state
    if command.type == schemas.PAID:
        paid, method, carrier, reason = data["amount"], data["method"], s.carrier, s.cancel_reason
    elif command.type == schemas.SHIPPED:
        paid, method, carrier, reason = (
            s.paid_amount,
            s.payment_method,
            data["carrier"],
            s.cancel_reason,
        )
    else:
        paid, method, carrier, reason = s.paid_amount, s.payment_method, s.carrier, data["reason"]
    return OrderState(
        s.order_id,
        s.customer_id,
        s.region,
        s.currency,
        target,
        s.item_count,
        s.quantity,
        s.amount,
        s.placed_at,
        updated_at,
        paid,
        method,
        carrier,
        reason,
    )


@register_filter("order_state", params=NoParams)
class OrderStateFilter(Keyed[OrderState]):
    """Folds each order's commands into its state; rejects commands that break its life.

    Every accepted envelope leaves with the order's new state as `order` (so later steps can
    read `order.region`, `order.customer_id`, …), including the command that closes it.
    """

    def __init__(self, step_id: str, params: NoParams) -> None:
        self.step_id = step_id

    def key(self, envelope: Envelope) -> str:
        return envelope.command.aggregate_id

    def step(
        self, state: OrderState | None, envelope: Envelope
    ) -> tuple[OrderState | None, Sequence[Output]]:
        outcome = apply(state, envelope)
        if isinstance(outcome, str):
            return state, (self.reject(envelope, Reason.INVALID_TRANSITION, outcome),)
        kept = None if outcome.status in _CLOSED else outcome
        return kept, (envelope.with_attrs(order=outcome),)

    def process(self, states: dict[str, OrderState], batch: list[Envelope]) -> list[Output]:
        """`Keyed.process` over `step`, inlined: one output per command, no tuple to extend
        and no call per command but `apply` and `with_attrs` (a property test holds the two
        equal)."""
        out: list[Output] = []
        append, get = out.append, states.get
        for envelope in batch:
            key = envelope.command.aggregate_id
            try:
                outcome = apply(get(key), envelope)
            except Exception as exc:
                append(self.failed(envelope, exc))
                continue
            if type(outcome) is str:
                append(self.reject(envelope, Reason.INVALID_TRANSITION, outcome))
                continue
            if outcome.status in _CLOSED:
                states.pop(key, None)
            else:
                states[key] = outcome
            append(envelope.with_attrs(order=outcome))
        return out


@register_filter("order_rows", params=NoParams)
class OrderRows(Stateless):
    """Projects the current state of each order: one row per order, the newest version wins.

    Reads the `order` that `order_state` attached; the log offset is the row's version.
    """

    def __init__(self, step_id: str, params: NoParams) -> None:
        self.step_id = step_id
        self.writes = "table"
        self.table = Table(
            name=step_id, columns=TABLE_COLUMNS, order_by=("order_id",), version="version"
        )

    def apply(self, envelope: Envelope) -> Output:
        order = envelope.attrs.get("order")
        if not isinstance(order, OrderState):
            return self.reject(
                envelope,
                Reason.INVALID_DATA,
                "order_rows needs order_state earlier in the pipeline",
            )
        record = envelope.record
        return Projected(record.partition, record.offset, order.row(record.offset))

    def apply_batch(self, batch: list[Envelope]) -> list[Output]:
        """`apply` over a batch without a call per command but `row`, when every envelope
        carries an order (as every one `order_state` passes does)."""
        orders = [e.attrs.get("order") for e in batch]
        if set(map(type, orders)) != {OrderState}:
            return super().apply_batch(batch)
        records = list(map(_record, batch))
        return [
            Projected(r.partition, r.offset, o.row(r.offset))
            for r, o in zip(records, orders, strict=True)
        ]
