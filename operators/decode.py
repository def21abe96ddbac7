"""The head of every pipeline: a log record becomes an `Envelope`, or a `Rejected` saying why."""

from __future__ import annotations

from operator import attrgetter

from core.envelope import (
    Envelope,
    LogRecord,
    MalformedCommand,
    Reason,
    Rejected,
    decode_command,
    decode_commands,
    failure,
)

STEP_ID = "decode"
#: larger records are refused before decoding: one giant command must not stall a pipeline
MAX_RECORD_BYTES = 1024 * 1024

_value = attrgetter("value")


class Decoder:
    def __init__(self, max_bytes: int = MAX_RECORD_BYTES) -> None:
        self.max_bytes = max_bytes

    def __call__(self, record: LogRecord) -> Envelope | Rejected:
        value = record.value
        if value is not None and len(value) > self.max_bytes:
            detail = f"record value has {len(value):,} bytes; the limit is {self.max_bytes:,}"
            return Rejected(record=record, step=STEP_ID, reason=Reason.TOO_LARGE, detail=detail)
        try:
            return Envelope(record=record, command=decode_command(value))
        except MalformedCommand as exc:
            return Rejected(record=record, step=STEP_ID, reason=exc.reason, detail=exc.detail)
        except Exception as exc:  # a nesting too deep for the decoder, or anything else
            return failure(record, STEP_ID, exc)

    def batch(self, records: list[LogRecord]) -> tuple[list[Envelope], list[Rejected]]:
        """A poll's records, decoded: the envelopes and the rejects, each in log order.

        The common poll (every record a command within the size limit) is decoded in one call;
        any other is decoded a record at a time, so each reject says why, as `__call__` does.
        """
        values = list(map(_value, records))
        try:
            if not values or max(map(len, values)) <= self.max_bytes:
                return list(map(Envelope, records, decode_commands(values))), []
        except Exception:  # a value that is None, or not a command: the per-record path says why
            pass
        envelopes: list[Envelope] = []
        rejects: list[Rejected] = []
        for record in records:
            decoded = self(record)
            (envelopes if type(decoded) is Envelope else rejects).append(decoded)  # type: ignore
        return envelopes, rejects
