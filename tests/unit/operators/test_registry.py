import msgspec
import pytest

from operators.base import Stateless
from operators.registry import Registry


def test_a_name_registers_once_and_carries_its_params():
    registry = Registry()

    class P(msgspec.Struct):
        n: int = 1

    @registry.register("twice", params=P)
    class Twice(Stateless):
        """Doubles things."""

        def __init__(self, step_id, params):
            self.step_id = step_id

        def apply(self, envelope):
            return envelope

    registration = registry.get("twice")
    assert registration.params is P
    assert registration.summary == "Doubles things."
    assert registry.names() == ["twice"]
    with pytest.raises(ValueError, match="'twice' is already registered"):
        registry.register("twice")(Twice)


def test_the_listing_has_every_filter_with_its_typed_params_and_their_docs():
    from operators.builtin import list_filters

    filters = {f.name: f for f in list_filters()}
    assert {"validate", "dedupe", "tumbling", "sliding", "session", "forward"} <= set(filters)
    tumbling = filters["tumbling"]
    assert tumbling.summary == "Fixed, non-overlapping windows of `size` on event time."
    params = {p.name: p for p in tumbling.params}
    assert params["aggregates"].required and params["aggregates"].default == ""
    assert (params["size"].type, params["size"].default) == ("str | int", "1m")
    assert params["late"].default == "dlq" and not params["late"].required
    # the `#:` comment above a field of a base struct is its doc
    assert params["time"].doc == "field path of the event time (epoch milliseconds)"
    assert filters["forward"].params[0].doc.startswith("include the derived fields")
