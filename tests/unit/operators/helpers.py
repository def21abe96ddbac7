from core.envelope import Command, Envelope, LogRecord


def env(type_="order.paid", data=None, attrs=None, ts=1000, offset=0, partition=0, id_=None, v=1):
    command = Command(
        id=id_ or f"c{offset}", type=type_, aggregate_id="o-1", ts=ts, v=v, data=data or {}
    )
    return Envelope(LogRecord(partition, offset, ts, b"o-1", b""), command, attrs or {})
