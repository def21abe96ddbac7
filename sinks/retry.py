"""What to do when ClickHouse refuses an insert: retry it, or find the row it cannot take.

An infrastructure error (the server is down, a timeout, too many parts, out of memory) says
nothing about the rows: the same batch is retried, with the same deduplication token, after a
growing pause, for as long as it takes. A content error (a value the column cannot hold) will
fail every time: the batch is split to find the rows at fault. Only content errors ever lead to
the DLQ. A fatal error (the table is missing, no right to write) is raised at once.
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
# Error codes no retry can cure: a table or column that is not there, no right to write. The
# deployment fails loudly instead of retrying forever.
FATAL_CODES = frozenset(
    {
        16,  # NO_SUCH_COLUMN_IN_TABLE
        47,  # UNKNOWN_IDENTIFIER
        60,  # UNKNOWN_TABLE
        62,  # SYNTAX_ERROR
        81,  # UNKNOWN_DATABASE
        164,  # READONLY
        497,  # ACCESS_DENIED
        516,  # AUTHENTICATION_FAILED
    }
)
_CODE = re.compile(r"Code: (\d+)")


def _code(exc: BaseException) -> int | None:
    found = _CODE.search(str(exc)) if isinstance(exc, DatabaseError) else None
    return int(found.group(1)) if found else None


def is_fatal_error(exc: BaseException) -> bool:
    """True when the store is not as this deployment needs it: retrying cannot help, and the
    rows are not at fault either."""
    return _code(exc) in FATAL_CODES


def is_content_error(exc: BaseException) -> bool:
    """True when the rows themselves are at fault (retrying cannot help)."""
    if isinstance(exc, TypeError | ValueError | OverflowError | struct.error | DataError):
        # raised while serialising a value client-side, before anything is sent
        return True
    return _code(exc) in CONTENT_CODES


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
