import pytest

from commands.envelope import Envelope, LogRecord, Reason, Rejected, decode_command, encode_command
from commands.generator import OrderGenerator
from operators.registry import FILTERS
from operators.validate import Validate, ValidateParams

RECORD = LogRecord(partition=0, offset=1, timestamp=0, key=b"k", value=b"")


def envelope(command):
    return Envelope(record=RECORD, command=command)


@pytest.fixture
def validate():
    return Validate("validate", ValidateParams())


def placed():
    return next(c for c in OrderGenerator(seed=1).take(10) if c.type == "order.placed")


def with_data(command, **changes):
    raw = encode_command(command).decode()
    doc = decode_command(raw.encode())
    return type(doc)(**{**{f: getattr(doc, f) for f in doc.__struct_fields__}, **changes})


def test_good_command_passes_unchanged(validate):
    env = envelope(placed())
    assert validate.apply(env) is env


@pytest.mark.parametrize(
    ("changes", "reason", "mentions"),
    [
        ({"type": "order.teleported"}, Reason.UNKNOWN_TYPE, "order.teleported"),
        ({"v": 7}, Reason.UNSUPPORTED_VERSION, "v7"),
        ({"aggregate_id": "o-other"}, Reason.KEY_MISMATCH, "o-other"),
    ],
)
def test_rejections_name_the_problem(validate, changes, reason, mentions):
    out = validate.apply(envelope(with_data(placed(), **changes)))
    assert isinstance(out, Rejected)
    assert out.reason is reason
    assert out.step == "validate"
    assert mentions in out.detail
    assert out.record is RECORD


@pytest.mark.parametrize(
    ("mutate", "mentions"),
    [
        (lambda d: d.pop("customer_id"), "customer_id"),
        (lambda d: d.update(region="moon-north"), "$.region"),
        (lambda d: d.update(items=[]), "$.items"),
        (lambda d: d["items"][0].update(qty=0), "$.items[0].qty"),
        (lambda d: d.update(currency="BTC"), "$.currency"),
    ],
)
def test_schema_violations_point_at_the_field(validate, mutate, mentions):
    command = placed()
    data = {**command.data, "items": [dict(i) for i in command.data["items"]]}
    mutate(data)
    out = validate.apply(envelope(with_data(command, data=data)))
    assert isinstance(out, Rejected)
    assert out.reason is Reason.INVALID_DATA
    assert mentions in out.detail


def test_registered_by_name():
    registration = FILTERS.get("validate")
    assert registration is not None
    assert registration.params is ValidateParams


def test_bad_schema_reference_is_refused():
    with pytest.raises(ValueError, match="does not name a SchemaRegistry"):
        Validate("validate", ValidateParams(schemas="commands.orders:REGIONS"))
