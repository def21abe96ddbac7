"""Oracles: what a projection should hold, computed from the commands alone.

Written independently of the filters (no import from `operators`), so a bug in a filter cannot
hide in its own oracle.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from core.envelope import Command


def expected_orders(commands: Iterable[Command]) -> dict[str, dict[str, object]]:
    """Current state per order of a stream of valid commands, in log order per order."""
    orders: dict[str, dict[str, object]] = {}
    for c in commands:
        d = c.data
        if c.type == "order.placed":
            orders[c.aggregate_id] = {
                "order_id": c.aggregate_id,
                "customer_id": d["customer_id"],
                "region": d["region"],
                "currency": d["currency"],
                "status": "placed",
                "item_count": len(d["items"]),
                "quantity": sum(i["qty"] for i in d["items"]),
                "amount": round(sum(i["qty"] * i["unit_price"] for i in d["items"]), 2),
                "paid_amount": 0.0,
                "payment_method": "",
                "carrier": "",
                "cancel_reason": "",
                "placed_at": c.ts,
                "updated_at": c.ts,
            }
            continue
        order = orders[c.aggregate_id]
        order["updated_at"] = max(order["updated_at"], c.ts)
        if c.type == "order.paid":
            order.update(status="paid", paid_amount=d["amount"], payment_method=d["method"])
        elif c.type == "order.shipped":
            order.update(status="shipped", carrier=d["carrier"])
        elif c.type == "order.cancelled":
            order.update(status="cancelled", cancel_reason=d["reason"])
    return orders


ORDER_COLUMNS = (
    "order_id, customer_id, region, currency, status, item_count, quantity, amount, "
    "paid_amount, payment_method, carrier, cancel_reason, "
    "toUnixTimestamp64Milli(placed_at) AS placed_at, toUnixTimestamp64Milli(updated_at) AS updated_at"
)


def diff_orders(expected: dict[str, dict[str, object]], rows: list[dict[str, object]]) -> list[str]:
    """Every difference between the oracle and the table's rows, as readable lines."""
    problems: list[str] = []
    got = {r["order_id"]: r for r in rows}
    if len(got) != len(rows):
        problems.append(f"{len(rows) - len(got)} orders appear more than once")
    for order_id in expected.keys() - got.keys():
        problems.append(f"missing order {order_id}")
    for order_id in got.keys() - expected.keys():
        problems.append(f"unexpected order {order_id}")
    for order_id in expected.keys() & got.keys():
        want, have = expected[order_id], got[order_id]
        for column, value in want.items():
            other = have[column]
            same = abs(other - value) < 1e-6 if isinstance(value, float) else other == value
            if not same:
                problems.append(f"{order_id}.{column}: expected {value!r}, got {other!r}")
    return problems


def expected_revenue_per_minute(
    commands: Iterable[Command], usd_rates: dict[str, float] | None = None
) -> dict[tuple[int, str, str], dict[str, float]]:
    """Paid orders and revenue per (minute of event time, order region, payment currency); with
    `usd_rates` (orders v2), the revenue in USD too."""
    region: dict[str, str] = {}
    windows: dict[tuple[int, str, str], dict[str, float]] = {}
    columns = {"paid_orders": 0, "revenue": 0.0}
    if usd_rates is not None:
        columns["revenue_usd"] = 0.0
    for c in commands:
        if c.type == "order.placed":
            region[c.aggregate_id] = c.data["region"]
        elif c.type == "order.paid":
            key = (c.ts - c.ts % 60_000, region[c.aggregate_id], c.data["currency"])
            w = windows.setdefault(key, dict(columns))
            w["paid_orders"] += 1
            w["revenue"] += c.data["amount"]
            if usd_rates is not None:
                w["revenue_usd"] += round(c.data["amount"] * usd_rates[c.data["currency"]], 6)
    return windows


def diff_windows(
    expected: dict[tuple, dict[str, float]], rows: list[dict[str, object]], keys: tuple[str, ...]
) -> list[str]:
    """Every difference between the oracle's windows and the rows, as readable lines: a window
    missing or extra, a column missing, a value off by more than rounding."""
    got = {tuple(epoch_ms(r[k]) for k in keys): r for r in rows}
    problems = []
    if len(got) != len(rows):
        problems.append(f"{len(rows) - len(got)} windows appear more than once")
    problems += [f"missing window {k}" for k in expected.keys() - got.keys()]
    problems += [f"unexpected window {k}" for k in got.keys() - expected.keys()]
    for key in expected.keys() & got.keys():
        for column, value in expected[key].items():
            if column not in got[key]:
                problems.append(f"{key}.{column}: expected {value!r}, the row has no {column}")
            elif abs(got[key][column] - value) > 1e-6 * max(1, abs(value)):
                problems.append(f"{key}.{column}: expected {value!r}, got {got[key][column]!r}")
    return problems


def epoch_ms(value: object) -> object:
    """Window starts come back as datetimes (or ISO text, through JSON); the oracle keys them
    by epoch milliseconds."""
    if isinstance(value, str) and "T" in value:
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        return int(value.replace(tzinfo=dt.UTC).timestamp() * 1000)
    return value


USD_RATES = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "JPY": 0.0067}


def without_test_customers(commands: Iterable[Command]) -> list[Command]:
    """What orders v2 keeps: every command of orders whose customer is not a test customer."""
    commands = list(commands)
    test_orders = {
        c.aggregate_id
        for c in commands
        if c.type == "order.placed" and c.data["customer_id"].startswith("test-")
    }
    return [c for c in commands if c.aggregate_id not in test_orders]


def expected_top_skus(
    commands: Iterable[Command], size: int = 300_000, hop: int = 60_000, k: int = 10
) -> dict[int, list[tuple[str, float]]]:
    """Top SKUs by quantity placed, per sliding window start."""
    weights: dict[int, dict[str, float]] = {}
    for c in commands:
        if c.type != "order.placed":
            continue
        last = c.ts - c.ts % hop
        for start in range(last - size + hop, last + 1, hop):
            w = weights.setdefault(start, {})
            for item in c.data["items"]:
                w[item["sku"]] = w.get(item["sku"], 0.0) + item["qty"]
    return {
        start: sorted(w.items(), key=lambda kv: (-kv[1], kv[0]))[:k] for start, w in weights.items()
    }
