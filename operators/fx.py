"""`fx`: converts an amount into one currency with a rates table from the spec.

`rates` gives how much of the target currency one unit of each currency buys. Commands without
the amount pass unchanged; an amount in a currency the table lacks is rejected, since a silent
zero or a skipped conversion would corrupt every revenue figure downstream.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from core.envelope import Envelope, Reason
from core.outputs import Output
from operators.base import Stateless
from operators.fields import MISSING, attr_name, getter
from operators.registry import register_filter


class FxParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    rates: dict[str, Annotated[float, msgspec.Meta(gt=0)]]
    amount: str = "data.amount"
    currency: str = "data.currency"
    #: the derived field holding the converted amount
    into: str = "amount_usd"
    to: str = "USD"


@register_filter("fx", params=FxParams)
class Fx(Stateless):
    """Converts an amount into the target currency."""

    def __init__(self, step_id: str, params: FxParams) -> None:
        self.step_id = step_id
        if params.to not in params.rates:
            raise ValueError(f"rates: the target currency {params.to!r} needs a rate (1.0)")
        self._rates = dict(params.rates)
        self._amount = getter(params.amount)
        self._currency = getter(params.currency)
        self._into = attr_name(params.into)
        self._to = params.to

    def apply(self, envelope: Envelope) -> Output:
        amount = self._amount(envelope)
        if amount is MISSING:
            return envelope
        currency = self._currency(envelope)
        rate = self._rates.get(currency)
        if rate is None or not isinstance(amount, int | float):
            return self.reject(
                envelope,
                Reason.UNKNOWN_CURRENCY,
                f"no {self._to} rate for {currency!r} (rates: {sorted(self._rates)})"
                if rate is None
                else f"amount {amount!r} is not a number",
            )
        return envelope.with_attrs(**{self._into: round(amount * rate, 6)})
