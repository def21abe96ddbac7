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
