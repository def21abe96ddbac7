"""The demo domain: orders placed, paid, shipped or cancelled, keyed by `order_id`."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from commands.schemas import Schema, SchemaRegistry
from core.envelope import NonEmpty

REGIONS = ("eu-west", "us-east", "ap-south", "sa-east")
CURRENCIES = ("EUR", "USD", "GBP", "JPY")
PAYMENT_METHODS = ("card", "paypal", "bank_transfer")
CARRIERS = ("dhl", "ups", "fedex", "postnl")

Region = Literal["eu-west", "us-east", "ap-south", "sa-east"]
Currency = Literal["EUR", "USD", "GBP", "JPY"]

PLACED = "order.placed"
PAID = "order.paid"
SHIPPED = "order.shipped"
CANCELLED = "order.cancelled"


class LineItem(msgspec.Struct, frozen=True):
    sku: NonEmpty
    qty: Annotated[int, msgspec.Meta(gt=0)]
    unit_price: Annotated[float, msgspec.Meta(ge=0)]


class OrderPlaced(msgspec.Struct, frozen=True):
    order_id: NonEmpty
    customer_id: NonEmpty
    region: Region
    currency: Currency
    items: Annotated[list[LineItem], msgspec.Meta(min_length=1)]


class OrderPaid(msgspec.Struct, frozen=True):
    order_id: NonEmpty
    amount: Annotated[float, msgspec.Meta(ge=0)]
    currency: Currency
    method: NonEmpty


class OrderShipped(msgspec.Struct, frozen=True):
    order_id: NonEmpty
    carrier: NonEmpty


class OrderCancelled(msgspec.Struct, frozen=True):
    order_id: NonEmpty
    reason: NonEmpty


SCHEMAS = SchemaRegistry(
    "orders",
    [
        Schema(PLACED, 1, OrderPlaced, key_field="order_id"),
        Schema(PAID, 1, OrderPaid, key_field="order_id"),
        Schema(SHIPPED, 1, OrderShipped, key_field="order_id"),
        Schema(CANCELLED, 1, OrderCancelled, key_field="order_id"),
    ],
)
