"""A projector that keeps nothing: the null sink of the decode-only scenario, registered the way
any user's filter is (the spec names this module under `modules:`)."""

from core.envelope import Envelope
from core.outputs import Output, Skipped
from operators.base import Stateless
from operators.registry import NoParams, register_filter


@register_filter("discard", params=NoParams)
class Discard(Stateless):
    """Drops every command: what is left of a pipeline is reading and decoding."""

    writes = "topic"  # a projector, though it forwards nothing

    def __init__(self, step_id: str, params: NoParams) -> None:
        self.step_id = step_id
        self._skipped = Skipped(step_id, "filtered")

    def apply(self, envelope: Envelope) -> Output:
        return self._skipped
