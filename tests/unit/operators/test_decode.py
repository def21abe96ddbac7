from core.envelope import Envelope, LogRecord, Reason, Rejected
from operators.decode import Decoder

decode = Decoder(max_bytes=2048)


def test_decode_wraps_the_record():
    raw = b'{"id":"c","type":"t","aggregate_id":"a","ts":1,"v":1,"data":{}}'
    record = LogRecord(3, 9, 100, b"a", raw)
    out = decode(record)
    assert isinstance(out, Envelope)
    assert out.record is record
    assert out.command.aggregate_id == "a"
    assert out.attrs == {}


def test_decode_rejects_with_reason_and_keeps_the_record():
    record = LogRecord(3, 9, 100, None, b"\x00garbage")
    out = decode(record)
    assert isinstance(out, Rejected)
    assert out.step == "decode"
    assert out.reason in (Reason.NOT_JSON, Reason.NOT_UTF8)
    assert out.record is record


def test_oversized_records_are_refused_before_decoding():
    big = (
        b'{"id":"c","type":"t","aggregate_id":"a","ts":1,"v":1,"data":{"x":"' + b"y" * 3000 + b'"}}'
    )
    out = decode(LogRecord(0, 0, 0, b"a", big))
    assert isinstance(out, Rejected)
    assert out.reason is Reason.TOO_LARGE
    assert "3,0" in out.detail and "2,048" in out.detail
