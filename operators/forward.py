"""`forward`: the projector of a topic projection: each command (with what filters derived)
becomes a JSON record on a downstream topic, keyed by its aggregate."""

from __future__ import annotations

import msgspec

from core.envelope import Envelope
from core.outputs import Forwarded, Output
from operators.base import Stateless
from operators.registry import register_filter

_encoder = msgspec.json.Encoder()


class ForwardParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: include the derived fields (`attrs`) beside the command
    attrs: bool = True


@register_filter("forward", params=ForwardParams)
class Forward(Stateless):
    """Writes each command to the projection's topic as JSON."""

    writes = "topic"

    def __init__(self, step_id: str, params: ForwardParams) -> None:
        self.step_id = step_id
        self._attrs = params.attrs

    def apply(self, envelope: Envelope) -> Output:
        c = envelope.command
        doc = {"id": c.id, "type": c.type, "aggregate_id": c.aggregate_id, "ts": c.ts, "v": c.v}
        doc["data"] = c.data
        if self._attrs and envelope.attrs:
            doc["attrs"] = envelope.attrs
        record = envelope.record
        return Forwarded(
            record.partition, record.offset, c.aggregate_id.encode(), _encoder.encode(doc)
        )
