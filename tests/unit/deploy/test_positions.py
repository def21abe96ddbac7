"""`--from` and `--until` as users write them: every accepted form parses to the position it
names, and every other text is refused with the forms that would work. (Resolving positions
against a real log: tests/integration/deploy/test_positions.py.)"""

import datetime as dt
import time

import pytest

from core.errors import ConfigError
from dataflows.source import StartAt
from deploy.positions import parse_from, parse_time, parse_until

NEW_YEAR_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize("kind", ["earliest", "latest"])
def test_named_starts(kind):
    assert parse_from(kind) == StartAt(kind)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2026-01-01T00:00:00Z", NEW_YEAR_MS),
        ("2026-01-01T00:00:00+00:00", NEW_YEAR_MS),
        ("2026-01-01T02:00:00+02:00", NEW_YEAR_MS),  # an offset is honoured
        ("2026-01-01T00:00:00", NEW_YEAR_MS),  # no zone: UTC, not the machine's zone
        ("2026-01-01", NEW_YEAR_MS),
        ("2026-01-01T00:00:00.250Z", NEW_YEAR_MS + 250),
        (str(NEW_YEAR_MS), NEW_YEAR_MS),  # epoch milliseconds
        ("0", 0),
    ],
)
def test_times_in_iso_8601_or_epoch_ms(text, ms):
    assert parse_time(text, "--until") == ms
    assert parse_from(text) == StartAt("timestamp", timestamp_ms=ms)


def test_explicit_offsets():
    assert parse_from("0:120") == StartAt("offsets", offsets={0: 120})
    assert parse_from("0:120,1:98,5:0") == StartAt("offsets", offsets={0: 120, 1: 98, 5: 0})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0:1,0:2", "--from '0:1,0:2' names partition 0 twice"),
        ("yesterday", "--from 'yesterday' is not a start: give earliest, latest, a time"),
        ("0:", "is not a start"),
        ("0:1,", "is not a start"),
        ("-1:5", "is not a start"),
        ("EARLIEST", "is not a start"),
        ("", "is not a start"),
        ("2026-13-01", "--from '2026-13-01' is not a time: give ISO 8601"),
        ("2026-01-01T25:00", "is not a time"),
    ],
)
def test_bad_starts_are_refused(text, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_from(text)


def test_until_now_is_the_current_time():
    before = int(time.time() * 1000)
    now = parse_until("now")
    after = int(time.time() * 1000)
    assert before <= now <= after


def test_until_a_time():
    assert parse_until("2026-01-01T00:00:00Z") == NEW_YEAR_MS
    assert parse_until(str(NEW_YEAR_MS + 1)) == NEW_YEAR_MS + 1
    with pytest.raises(ConfigError, match="--until 'soon' is not a time"):
        parse_until("soon")
    with pytest.raises(ConfigError, match="--until 'later' is not a time"):
        parse_time("later", "--until")


def test_the_iso_form_agrees_with_datetime():
    moment = dt.datetime(2027, 6, 30, 23, 59, 59, 999_000, tzinfo=dt.UTC)
    assert parse_time(moment.isoformat(), "--from") == int(moment.timestamp() * 1000)
