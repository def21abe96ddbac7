"""What to do when ClickHouse refuses an insert: retry it, or find the row it cannot take.

An infrastructure error (the server is down, a timeout, too many parts, out of memory) says
nothing about the rows: the same batch is retried, with the same deduplication token, after a
growing pause, for as long as it takes. A content error (a value the column cannot hold) will
fail every time: the batch is split to find the rows at fault. Only content errors ever lead to
the DLQ.
"""

from __future__ import annotations

import re
import struct
import time
from dataclasses import dataclass

from clickhouse_connect.driver.exceptions import DatabaseError, DataError

# ClickHouse error codes that a value in the batch causes.
CONTENT_CODES = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        38,  # CANNOT_PARSE_DATE
        41,  # CANNOT_PARSE_DATETIME
        53,  # TYPE_MISMATCH
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        72,  # CANNOT_PARSE_NUMBER
        117,  # INCORRECT_DATA
        131,  # TOO_LARGE_STRING_SIZE
        321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
        349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    }
)
_CODE = re.compile(r"Code: (\d+)")


def is_content_error(exc: BaseException) -> bool:
    """True when the rows themselves are at fault (retrying cannot help)."""
    if isinstance(exc, TypeError | ValueError | OverflowError | struct.error | DataError):
        # raised while serialising a value client-side, before anything is sent
        return True
    if isinstance(exc, DatabaseError):
        found = _CODE.search(str(exc))
        return found is not None and int(found.group(1)) in CONTENT_CODES
    return False


@dataclass
class Backoff:
    """Pauses that double from `first_s` up to `max_s`."""

    first_s: float = 0.1
    max_s: float = 5.0
    attempts: int = 0

    def pause(self) -> float:
        seconds = min(self.max_s, self.first_s * 2**self.attempts)
        self.attempts += 1
        time.sleep(seconds)
        return seconds

    def reset(self) -> None:
        self.attempts = 0
