"""`set` gives derived fields fixed values; `map` copies values from other fields.

Derived fields live beside the command (in the envelope's `attrs`), so the command stays as it
was logged and a later step reads them by name (`set: {fields: {channel: web}}`, then
`channel`).
"""

from __future__ import annotations

from typing import Any

import msgspec

from core.envelope import Envelope
from core.outputs import Output
from operators.base import Stateless
from operators.fields import MISSING, attr_name, getter
from operators.registry import register_filter


class SetParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    fields: dict[str, Any]


class MapParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: derived field name -> field path to copy from
    fields: dict[str, str]
    #: the value when the source field is missing; left unset, the field is not derived
    default: Any = MISSING


@register_filter("set", params=SetParams)
class SetFields(Stateless):
    """Derives fields with fixed values."""

    def __init__(self, step_id: str, params: SetParams) -> None:
        self.step_id = step_id
        self._values = {attr_name(k): v for k, v in params.fields.items()}

    def apply(self, envelope: Envelope) -> Output:
        return envelope.with_attrs(**self._values)


@register_filter("map", params=MapParams)
class MapFields(Stateless):
    """Derives fields by copying values from other fields."""

    def __init__(self, step_id: str, params: MapParams) -> None:
        self.step_id = step_id
        self._copies = [(attr_name(k), getter(path)) for k, path in params.fields.items()]
        self._default = params.default

    def apply(self, envelope: Envelope) -> Output:
        derived = {}
        for name, get in self._copies:
            value = get(envelope)
            if value is MISSING:
                value = self._default
            if value is not MISSING:
                derived[name] = value
        return envelope.with_attrs(**derived) if derived else envelope
