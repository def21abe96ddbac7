"""The head of every pipeline: a log record becomes an `Envelope`, or a `Rejected` saying why."""

from __future__ import annotations

from core.envelope import (
    Envelope,
    LogRecord,
    MalformedCommand,
    Reason,
    Rejected,
    decode_command,
    failure,
)

STEP_ID = "decode"
#: larger records are refused before decoding: one giant command must not stall a pipeline
MAX_RECORD_BYTES = 1024 * 1024


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
