from commands.envelope import Envelope, LogRecord, Reason, Rejected
from operators.decode import decode


def test_decode_wraps_the_record():
    raw = b'{"id":"c","type":"t","aggregate_id":"a","ts":1,"v":1,"data":{}}'
    record = LogRecord(3, 9, 100, b"a", raw)
    out = decode(record)
    assert isinstance(out, Envelope)
    assert out.record is record
    assert out.command.aggregate_id == "a"


def test_decode_rejects_with_reason_and_keeps_the_record():
    record = LogRecord(3, 9, 100, None, b"\x00garbage")
    out = decode(record)
    assert isinstance(out, Rejected)
    assert out.step == "decode"
    assert out.reason in (Reason.NOT_JSON, Reason.NOT_UTF8)
    assert out.record is record
