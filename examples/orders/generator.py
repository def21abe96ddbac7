"""A deterministic load generator for the orders domain.

Orders are walked through a realistic life (placed → paid → shipped, some cancelled), many at
once and interleaved, on a simulated event-time clock. The same seed and start time give the
same commands, so a test can recompute what a pipeline should produce.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from typing import Any

from core.envelope import Command
from examples.orders import schemas

_CURRENCY_RATE = {"EUR": 1.0, "USD": 1.1, "GBP": 0.85, "JPY": 160.0}
_SKUS = tuple(f"sku-{n:03d}" for n in range(1, 201))
_SKU_PRICE_EUR = {sku: round(2.0 + (n * 7.31) % 120, 2) for n, sku in enumerate(_SKUS)}


class OrderGenerator:
    """Yields order commands forever; `step_ms` is the mean event-time gap between commands."""

    def __init__(
        self,
        seed: int = 0,
        start_ms: int = 1_767_225_600_000,
        step_ms: float = 1.0,
        open_orders: int = 200,
        test_customer_share: float = 0.05,
    ) -> None:
        self._rng = random.Random(seed)
        self._clock = float(start_ms)
        self._step_ms = step_ms
        self._target_open = open_orders
        self._test_share = test_customer_share
        self._open: list[tuple[str, str, dict[str, Any]]] = []  # (order_id, status, placed data)

    def __iter__(self) -> Iterator[Command]:
        while True:
            yield self.next()

    def take(self, count: int) -> list[Command]:
        return [self.next() for _ in range(count)]

    def next(self) -> Command:
        self._clock += self._rng.expovariate(1.0 / self._step_ms) if self._step_ms > 0 else 0
        # Place more orders while fewer than the target are open; otherwise advance one.
        place_chance = 0.9 if len(self._open) < self._target_open else 0.25
        if not self._open or self._rng.random() < place_chance:
            return self._place()
        return self._advance(self._rng.randrange(len(self._open)))

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _command(self, type_: str, order_id: str, data: dict[str, Any]) -> Command:
        return Command(
            id=self._uuid(), type=type_, aggregate_id=order_id, ts=int(self._clock), v=1, data=data
        )

    def _place(self) -> Command:
        rng = self._rng
        order_id = f"o-{rng.getrandbits(48):012x}"
        if rng.random() < self._test_share:
            customer = f"test-{rng.randrange(50):03d}"
        else:
            customer = f"c-{rng.randrange(20_000):05d}"
        currency = rng.choice(schemas.CURRENCIES)
        skus = rng.sample(_SKUS[: 20 + rng.randrange(180)], k=1 + min(4, int(rng.expovariate(1.0))))
        items = [
            {
                "sku": sku,
                "qty": 1 + int(rng.expovariate(0.7)),
                "unit_price": round(_SKU_PRICE_EUR[sku] * _CURRENCY_RATE[currency], 2),
            }
            for sku in skus
        ]
        data = {
            "order_id": order_id,
            "customer_id": customer,
            "region": rng.choice(schemas.REGIONS),
            "currency": currency,
            "items": items,
        }
        self._open.append((order_id, "placed", data))
        return self._command(schemas.PLACED, order_id, data)

    def _advance(self, index: int) -> Command:
        rng = self._rng
        order_id, status, placed = self._open[index]
        if status == "placed" and rng.random() < 0.9:
            total = round(sum(i["qty"] * i["unit_price"] for i in placed["items"]), 2)
            self._open[index] = (order_id, "paid", placed)
            return self._command(
                schemas.PAID,
                order_id,
                {
                    "order_id": order_id,
                    "amount": total,
                    "currency": placed["currency"],
                    "method": rng.choice(schemas.PAYMENT_METHODS),
                },
            )
        # The order's life ends here: swap-remove keeps picking O(1).
        self._open[index] = self._open[-1]
        self._open.pop()
        if status == "paid" and rng.random() < 0.95:
            return self._command(
                schemas.SHIPPED,
                order_id,
                {"order_id": order_id, "carrier": rng.choice(schemas.CARRIERS)},
            )
        reason = rng.choice(("customer_request", "payment_failed", "out_of_stock"))
        return self._command(schemas.CANCELLED, order_id, {"order_id": order_id, "reason": reason})
