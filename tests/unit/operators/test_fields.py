import pytest

from examples.orders.order_state import OrderState
from operators.fields import MISSING, attr_name, getter
from tests.unit.operators.helpers import env


def test_paths_reach_the_command_its_data_the_log_and_derived_fields():
    order = OrderState("o-1", "c-1", "eu-west", "EUR", "placed", 1, 2, 3.0, 0, 0)
    e = env(data={"a": {"b": 5}, "items": [1]}, attrs={"order": order, "usd": 2.5}, offset=7)
    assert getter("type")(e) == "order.paid"
    assert getter("data.a.b")(e) == 5
    assert getter("data.items")(e) == [1]
    assert getter("log.offset")(e) == 7
    assert getter("order.region")(e) == "eu-west"
    assert getter("usd")(e) == 2.5
    assert getter("data.a.zz")(e) is MISSING
    assert getter("nothing.here")(e) is MISSING


@pytest.mark.parametrize(
    ("path", "message"),
    [("data..x", "not a field path"), ("ts.x", "plain value"), ("log.nope", "the log has")],
)
def test_bad_paths_are_refused(path, message):
    with pytest.raises(ValueError, match=message):
        getter(path)


def test_derived_fields_cannot_shadow_the_envelope():
    with pytest.raises(ValueError, match="cannot be a derived field"):
        attr_name("data")
    assert attr_name("amount_usd") == "amount_usd"
