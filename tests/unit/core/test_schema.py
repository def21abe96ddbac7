import pytest

from core.errors import StoreError
from core.schema import Table, is_ident


def table(**kw):
    base = dict(name="t", columns=(("k", "String"), ("v", "UInt64")), order_by=("k",), version="v")
    return Table(**{**base, **kw})


def test_keys_must_be_columns():
    with pytest.raises(StoreError, match="key column 'nope'"):
        table(order_by=("nope",))


def test_plain_names_only():
    assert is_ident("orders_v2")
    for bad in ("1x", "a b", "a`b", "", "x" * 129, "orders\n"):
        assert not is_ident(bad)
