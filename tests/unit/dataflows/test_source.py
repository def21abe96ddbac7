"""The source's one-pass reading of a poll gives what reading it a record at a time gives."""

from datetime import timedelta

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from core.envelope import LogRecord, Reason
from dataflows.source import FIRST_WAIT, next_wait, read_each, read_records

_headers = st.lists(st.tuples(st.sampled_from(["replayed-from-dlq", "trace"]), st.binary()))


#: a record's draws, built once (a strategy built at each draw is validated again each time,
#: which was most of this test's time)
_timestamp = st.integers(0, 2**41)
_key = st.none() | st.binary(max_size=4)
_value = st.none() | st.binary(max_size=8)


@st.composite
def polls(draw: st.DrawFn) -> list[LogRecord]:
    first = draw(st.integers(0, 50))
    count = draw(st.integers(0, 12))
    with_headers = draw(st.booleans())
    return [
        LogRecord(
            3,
            first + n,
            draw(_timestamp),
            key=draw(_key),
            value=draw(_value),
            headers=draw(_headers) if with_headers else [],
        )
        for n in range(count)
    ]


def _replayed(record: LogRecord) -> LogRecord:
    return msgspec.structs.replace(record, replayed_from=record.offset)


@settings(max_examples=300, deadline=None)
@given(
    messages=polls(),
    stop=st.none() | st.integers(0, 70),
    skips=st.frozensets(st.integers(0, 70), max_size=3),
    check=st.sampled_from([None, _replayed]),
)
def test_one_pass_equals_a_record_at_a_time(messages, stop, skips, check):
    records, rejects = read_records(messages, stop, skips, check)
    assert (records, rejects) == read_each(messages, stop, skips, check)
    # and what that is, spelled out: nothing at or past stop, a skip's record only as a reject
    kept = [m for m in messages if stop is None or m.offset < stop]
    assert [r.offset for r in records] == [m.offset for m in kept if m.offset not in skips]
    assert [r.record.offset for r in rejects] == [m.offset for m in kept if m.offset in skips]
    assert all(r.reason is Reason.SKIPPED_BY_OPERATOR for r in rejects)
    for r in records:
        m = messages[r.offset - messages[0].offset]
        assert (r.partition, r.timestamp, r.key, r.value, r.headers) == (
            3, m.timestamp, m.key, m.value, m.headers,
        )  # fmt: skip
        claims = check is not None and bool(m.headers)
        assert r.replayed_from == (r.offset if claims else None)


def test_the_wait_after_an_empty_poll_is_short_only_while_behind():
    """Behind the log's end the next fetch is in flight: 1 ms, doubling up to idle_wait while
    polls stay empty. At the end: idle_wait, and the next time behind starts short again."""
    idle = timedelta(milliseconds=20)
    wait, waits = FIRST_WAIT, []
    for _ in range(7):
        this, wait = next_wait(wait, True, idle)
        waits.append(this)
    assert [w / timedelta(milliseconds=1) for w in waits] == [1, 2, 4, 8, 16, 20, 20]
    this, wait = next_wait(wait, False, idle)
    assert (this, wait) == (idle, FIRST_WAIT)
    assert next_wait(wait, True, idle) == (FIRST_WAIT, 2 * FIRST_WAIT)
