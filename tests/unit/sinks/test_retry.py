from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from sinks.retry import Backoff, is_content_error, is_fatal_error


def error(code, name):
    return DatabaseError(f"Code: {code}. DB::Exception: something. ({name})")


def test_errors_are_sorted_into_content_fatal_and_retryable():
    assert is_content_error(error(53, "TYPE_MISMATCH"))
    assert is_content_error(ValueError("bad value for UInt64"))
    assert is_fatal_error(error(60, "UNKNOWN_TABLE"))
    assert is_fatal_error(error(164, "READONLY"))
    for retryable in (
        error(252, "TOO_MANY_PARTS"),
        error(241, "MEMORY_LIMIT_EXCEEDED"),
        OperationalError("down"),
    ):
        assert not is_content_error(retryable) and not is_fatal_error(retryable)


def test_backoff_doubles_up_to_its_cap(monkeypatch):
    slept = []
    monkeypatch.setattr("time.sleep", slept.append)
    backoff = Backoff(first_s=0.1, max_s=0.5)
    for _ in range(5):
        backoff.pause()
    assert slept == [0.1, 0.2, 0.4, 0.5, 0.5]
