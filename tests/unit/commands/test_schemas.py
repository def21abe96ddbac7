import msgspec
import pytest

from commands.schemas import Schema, SchemaRegistry


class Thing(msgspec.Struct):
    name: str


def test_registering_a_type_version_twice_is_an_error():
    registry = SchemaRegistry("x", [Schema("thing.made", 1, Thing)])
    with pytest.raises(ValueError, match=r"thing\.made v1 is registered twice"):
        registry.register(Schema("thing.made", 1, Thing))


def test_lookup_by_type_and_version():
    registry = SchemaRegistry("x", [Schema("a", 1, Thing), Schema("a", 2, Thing)])
    assert registry.get("a", 2) is not None
    assert registry.get("a", 3) is None
    assert registry.versions("a") == [1, 2]
    assert registry.types() == ["a"]
