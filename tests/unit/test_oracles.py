"""The oracles' comparisons must fail on the faults they are there to catch, or their passing
means nothing: each planted fault here is reported, and the right rows pass."""

import datetime as dt

from examples.orders.generator import OrderGenerator
from tests.oracles import USD_RATES, diff_windows, expected_revenue_per_minute

KEYS = ("window_start", "region", "currency")


def as_rows(windows, start_as_datetime=True):
    """The windows as a view returns them (window starts as datetimes)."""
    rows = []
    for (start, region, currency), values in windows.items():
        when = dt.datetime.fromtimestamp(start / 1000, dt.UTC).replace(tzinfo=None)
        rows.append(
            {"window_start": when if start_as_datetime else start, "region": region,
             "currency": currency, **values}
        )  # fmt: skip
    return rows


def test_diff_windows_catches_every_planted_fault():
    commands = OrderGenerator(seed=3).take(400)
    want = expected_revenue_per_minute(commands, usd_rates=USD_RATES)
    assert len(want) > 3 and all("revenue_usd" in w for w in want.values())
    good = as_rows(want)
    assert diff_windows(want, good, KEYS) == []
    assert diff_windows(want, as_rows(want, start_as_datetime=False), KEYS) == []

    first = next(iter(want))
    without_usd = [{k: v for k, v in r.items() if k != "revenue_usd"} for r in good]
    problems = diff_windows(want, without_usd, KEYS)  # a column the table lost
    assert len(problems) == len(want)
    assert problems[0].endswith("the row has no revenue_usd")

    off = [dict(r) for r in good]
    off[0]["revenue"] += 0.01
    assert diff_windows(want, off, KEYS) == [
        f"{first}.revenue: expected {want[first]['revenue']!r}, got {off[0]['revenue']!r}"
    ]
    rounding = [dict(r) for r in good]
    rounding[0]["revenue"] += 1e-9 * max(1, abs(rounding[0]["revenue"]))
    assert diff_windows(want, rounding, KEYS) == []

    assert diff_windows(want, good[1:], KEYS) == [f"missing window {first}"]
    moved = [dict(r) for r in good]
    moved[0]["region"] = "mars"
    assert f"unexpected window {(first[0], 'mars', first[2])}" in diff_windows(want, moved, KEYS)
    assert diff_windows(want, [*good, good[0]], KEYS)[0] == "1 windows appear more than once"


def test_revenue_in_usd_only_when_the_pipeline_converts():
    commands = OrderGenerator(seed=4).take(200)
    v1 = expected_revenue_per_minute(commands)
    v2 = expected_revenue_per_minute(commands, usd_rates=USD_RATES)
    assert v1.keys() == v2.keys()
    assert all(set(w) == {"paid_orders", "revenue"} for w in v1.values())
    assert all(set(w) == {"paid_orders", "revenue", "revenue_usd"} for w in v2.values())
