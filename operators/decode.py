"""The head of every pipeline: a log record becomes an `Envelope`, or a `Rejected` saying why."""

from __future__ import annotations

from commands.envelope import Envelope, LogRecord, MalformedCommand, Rejected, decode_command

STEP_ID = "decode"


def decode(record: LogRecord) -> Envelope | Rejected:
    try:
        return Envelope(record=record, command=decode_command(record.value))
    except MalformedCommand as exc:
        return Rejected(record=record, step=STEP_ID, reason=exc.reason, detail=exc.detail)
