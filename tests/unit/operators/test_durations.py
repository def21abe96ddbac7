import pytest

from operators.durations import millis


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("500ms", 500),
        ("30s", 30_000),
        ("1m", 60_000),
        ("2h", 7_200_000),
        ("1d", 86_400_000),
        (250, 250),
    ],
)
def test_durations(text, ms):
    assert millis(text) == ms


@pytest.mark.parametrize("bad", ["1 hour", "-1s", "1.5m", True, -5])
def test_bad_durations_name_the_forms(bad):
    with pytest.raises(ValueError, match="lateness"):
        millis(bad, "lateness")
