"""The parsed-spec cache: one parse per deployment record, none kept for what is gone, and a
spec from the API still held to the allow-list."""

import pytest

from core.errors import SpecError
from deploy.model import Origin, Stage
from deploy.records import Record
from deploy.specs import Specs
from operators.code import allow_list
from tests.conftest import REPO

SPEC = (REPO / "examples" / "orders" / "specs" / "orders.yaml").read_text()


def record(**changes):
    fields = dict(name="orders_v1", pipeline="orders", version=1, spec=SPEC, source="o.yaml",
                  topic="t", start={}, stop=None, created_at=1000)  # fmt: skip
    return Record(**{**fields, **changes})


def test_a_record_is_parsed_once_until_it_is_created_again_or_gone():
    specs = Specs(allow_list())
    first = specs.of(record())
    assert specs.of(record()) is first  # another read of the same row: no parse
    assert specs.of(record(created_at=2000)) is not first  # deployed again after an abort
    specs.forget("orders_v1")
    assert specs.of(record(created_at=2000)) is not first
    gone = record(name="orders_v0", stage=Stage.RETIRED)
    assert specs.of(gone) is not specs.of(gone)  # `status --all` reads it: nothing is kept
    unsaved = record(name="orders_v9", created_at=0)
    assert specs.of(unsaved) is not specs.of(unsaved)
    assert first.deployment == "orders_v1" and first.projections


def test_a_spec_from_the_api_is_held_to_the_allow_list_at_every_parse():
    evil = SPEC.replace("filters:", "modules: [tests.fixtures.import_marker]\nfilters:", 1)
    specs = Specs(allow_list())
    with pytest.raises(SpecError, match=r"tests\.fixtures\.import_marker"):
        specs.of(record(spec=evil, origin=Origin.API))
    with pytest.raises(SpecError, match=r"tests\.fixtures\.import_marker"):
        specs.parse(evil, "evil.yaml", Origin.API)
    assert Specs(allow_list(["tests.fixtures"])).of(record(spec=evil, origin=Origin.API))
