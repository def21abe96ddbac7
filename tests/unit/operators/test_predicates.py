import pytest

from operators.predicates import compile_condition
from tests.unit.operators.helpers import env

E = env(data={"customer": "test-007", "amount": 12.5, "tags": ["a"]}, attrs={"x": 1})


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"type": "order.paid"}, True),
        ({"type": {"eq": "order.placed"}}, False),
        ({"type": {"in": ["order.paid", "order.placed"]}}, True),
        ({"type": {"not_in": ["order.paid"]}}, False),
        ({"data.customer": {"startswith": "test-"}}, True),
        ({"data.customer": {"endswith": "7"}}, True),
        ({"data.tags": {"contains": "a"}}, True),
        ({"data.amount": {"gt": 12}}, True),
        ({"data.amount": {"le": 12}}, False),
        ({"data.amount": {"gt": "x"}}, False),  # incomparable is false, not an error
        ({"data.nope": {"exists": False}}, True),
        ({"data.nope": {"ne": 3}}, True),
        ({"data.nope": {"eq": None}}, False),
        ({"data.customer": {"matches": r"^test-\d+$"}}, True),
        ({"type": "order.paid", "x": 2}, False),  # all must hold
    ],
)
def test_conditions(condition, expected):
    assert compile_condition(condition)(E) is expected


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ({}, "maps field paths to tests"),
        ({"type": {"like": "x"}}, "unknown test 'like'"),
        ({"type": {"in": "x"}}, "expected a list"),
        ({"type": {"matches": "("}}, "not a regular expression"),
        ({"type": {"exists": "yes"}}, "expected true or false"),
    ],
)
def test_bad_conditions_say_what_is_wrong(condition, message):
    with pytest.raises(ValueError, match=message):
        compile_condition(condition)
