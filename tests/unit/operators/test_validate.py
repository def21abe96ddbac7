import pytest

from core.envelope import Envelope, LogRecord, Reason, Rejected, decode_command, encode_command
from examples.orders.generator import OrderGenerator
from operators.registry import FILTERS
from operators.validate import Validate, ValidateParams

SCHEMAS = "examples.orders.schemas:SCHEMAS"


def envelope(command, key=None, log_time=None):
    record = LogRecord(
        partition=0,
        offset=1,
        timestamp=command.ts if log_time is None else log_time,
        key=command.aggregate_id.encode() if key is None else key,
        value=b"",
    )
    return Envelope(record=record, command=command)


@pytest.fixture
def validate():
    return Validate("validate", ValidateParams(SCHEMAS))


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
        ({"v": 2}, Reason.UNSUPPORTED_VERSION, "known: [1]"),
    ],
)
def test_rejections_name_the_problem(validate, changes, reason, mentions):
    env = envelope(with_data(placed(), **changes), key=placed().aggregate_id.encode())
    out = validate.apply(env)
    assert isinstance(out, Rejected)
    assert out.reason is reason
    assert out.step == "validate"
    assert mentions in out.detail
    assert out.record is env.record


def test_the_record_key_must_be_the_aggregate(validate):
    command = placed()
    out = validate.apply(Envelope(LogRecord(0, 1, command.ts, None, b""), command))
    assert isinstance(out, Rejected) and out.reason is Reason.NULL_KEY
    out = validate.apply(envelope(command, key=b"o-elsewhere"))
    assert isinstance(out, Rejected) and out.reason is Reason.KEY_MISMATCH


def test_event_time_far_ahead_of_log_time_is_refused(validate):
    command = placed()
    assert validate.apply(envelope(command, log_time=command.ts - 3_599_000)).command is command
    out = validate.apply(envelope(command, log_time=command.ts - 3_601_000))
    assert isinstance(out, Rejected)
    assert out.reason is Reason.FUTURE_TIME
    assert "3601s ahead" in out.detail


def test_key_check_can_be_switched_off():
    lax = Validate("validate", ValidateParams(SCHEMAS, require_key=False))
    command = placed()
    assert lax.apply(Envelope(LogRecord(0, 1, command.ts, None, b""), command)).command is command


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


def test_bad_params_are_refused():
    with pytest.raises(ValueError, match="does not name a SchemaRegistry"):
        Validate("validate", ValidateParams(schemas="examples.orders.schemas:REGIONS"))
    with pytest.raises(ValueError, match="max_future: '1 hour' is not a duration"):
        Validate("validate", ValidateParams(SCHEMAS, max_future="1 hour"))
