import pytest

from core.envelope import Command, MalformedCommand, Reason, decode_command, encode_command

GOOD = b'{"id":"c1","type":"order.placed","aggregate_id":"o-1","ts":5,"v":1,"data":{"a":1}}'


def test_round_trip():
    command = decode_command(GOOD)
    assert command == Command(
        id="c1", type="order.placed", aggregate_id="o-1", ts=5, v=1, data={"a": 1}
    )
    assert decode_command(encode_command(command)) == command


@pytest.mark.parametrize(
    ("raw", "reason", "mentions"),
    [
        (b"\xff\xfe\x00", Reason.NOT_UTF8, "UTF-8"),
        ('{"id":"\xe9"}'.encode("latin-1"), Reason.NOT_UTF8, "UTF-8"),
        (b"{not json", Reason.NOT_JSON, "malformed"),
        (b"", Reason.WRONG_SHAPE, "empty"),
        (None, Reason.WRONG_SHAPE, "empty"),
        (b"[1, 2]", Reason.WRONG_SHAPE, "object"),
        (GOOD.replace(b'"aggregate_id":"o-1",', b""), Reason.WRONG_SHAPE, "aggregate_id"),
        (GOOD.replace(b'"o-1"', b'""'), Reason.WRONG_SHAPE, "$.aggregate_id"),
        (GOOD.replace(b'"ts":5', b'"ts":"soon"'), Reason.WRONG_SHAPE, "$.ts"),
        (GOOD.replace(b'"v":1', b'"v":0'), Reason.WRONG_SHAPE, "$.v"),
        (GOOD.replace(b'"data":{"a":1}', b'"data":[1]'), Reason.WRONG_SHAPE, "$.data"),
    ],
)
def test_malformed_records_say_why(raw, reason, mentions):
    with pytest.raises(MalformedCommand) as caught:
        decode_command(raw)
    assert caught.value.reason is reason
    assert mentions in caught.value.detail
