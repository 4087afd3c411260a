"""Periods: calendar arithmetic from the anchor, clamped month ends, proration stubs."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidInput, InvalidInterval
from domain.money import prorate
from domain.periods import (
    Interval,
    add_interval,
    monthly_amount,
    next_anchor_day,
    seconds_between,
    subtract_interval,
)

MONTH = Interval("month")
YEAR = Interval("year")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_interval_str_and_dict_round_trip() -> None:
    assert str(MONTH) == "month"
    assert str(Interval("month", 3)) == "3 months"
    assert str(YEAR) == "year"
    assert str(Interval("week", 2)) == "2 weeks"
    assert Interval.from_dict(Interval("week", 2).to_dict()) == Interval("week", 2)
    assert Interval("day", 7).to_dict() == {"unit": "day", "count": 7}


def test_interval_parse_normalises_what_people_type() -> None:
    assert Interval.parse("month", 1) == MONTH
    assert Interval.parse("Months", "3") == Interval("month", 3)
    assert Interval.parse("yearly") == YEAR
    assert Interval.parse(" weeks ", 2) == Interval("week", 2)


@pytest.mark.parametrize(
    ("unit", "count"),
    [("fortnight", 1), ("month", 0), ("month", -1), ("month", True), ("month", 1.0)],
)
def test_interval_refuses_unknown_units_and_bad_counts(unit: str, count: object) -> None:
    with pytest.raises(InvalidInterval):
        Interval(unit, count)  # type: ignore[arg-type]


def test_interval_parse_refuses_garbage_counts() -> None:
    for count in ("x", "-1", "0", "1.5"):
        with pytest.raises(InvalidInterval):
            Interval.parse("month", count)


def test_month_end_anchor_clamps_and_keeps_its_day() -> None:
    anchor = utc(2024, 1, 31, 13, 45, 10)
    got = [add_interval(anchor, MONTH, n) for n in range(5)]
    assert got == [
        utc(2024, 1, 31, 13, 45, 10),
        utc(2024, 2, 29, 13, 45, 10),
        utc(2024, 3, 31, 13, 45, 10),
        utc(2024, 4, 30, 13, 45, 10),
        utc(2024, 5, 31, 13, 45, 10),
    ]


def test_month_end_anchor_in_a_non_leap_year_lands_on_feb_28() -> None:
    anchor = utc(2023, 1, 31)
    assert add_interval(anchor, MONTH, 1) == utc(2023, 2, 28)
    assert add_interval(anchor, MONTH, 2) == utc(2023, 3, 31)
    assert add_interval(anchor, MONTH, 13) == utc(2024, 2, 29)


def test_leap_day_yearly_anchor_returns_to_feb_29_in_leap_years() -> None:
    anchor = utc(2024, 2, 29)
    assert add_interval(anchor, YEAR, 1) == utc(2025, 2, 28)
    assert add_interval(anchor, YEAR, 3) == utc(2027, 2, 28)
    assert add_interval(anchor, YEAR, 4) == utc(2028, 2, 29)


def test_multi_month_intervals_cross_year_ends() -> None:
    assert add_interval(utc(2024, 11, 30), Interval("month", 3), 1) == utc(2025, 2, 28)
    assert add_interval(utc(2024, 12, 15), Interval("month", 1), 1) == utc(2025, 1, 15)


def test_day_and_week_intervals_are_fixed_lengths() -> None:
    anchor = utc(2024, 2, 27, 6)
    assert add_interval(anchor, Interval("day"), 3) == utc(2024, 3, 1, 6)
    assert add_interval(anchor, Interval("week", 2), 1) == utc(2024, 3, 12, 6)


def test_add_interval_refuses_naive_non_utc_and_negative_steps() -> None:
    with pytest.raises(InvalidInput):
        add_interval(datetime(2024, 1, 1), MONTH, 1)
    with pytest.raises(InvalidInput):
        add_interval(datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=2))), MONTH, 1)
    with pytest.raises(InvalidInput):
        add_interval(utc(2024, 1, 1), MONTH, -1)
    with pytest.raises(InvalidInput):
        add_interval(utc(9999, 6, 1), YEAR, 1)


_datetimes = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 12, 31), timezones=st.just(UTC)
)
_intervals = st.builds(
    Interval, st.sampled_from(("day", "week", "month", "year")), st.integers(1, 10)
)


@given(_datetimes, _intervals, st.integers(0, 300), st.integers(1, 300))
def test_add_interval_is_monotone_and_keeps_the_anchor_day_when_it_can(
    anchor: datetime, interval: Interval, n: int, step: int
) -> None:
    here, later = add_interval(anchor, interval, n), add_interval(anchor, interval, n + step)
    assert here < later
    assert here.time() == anchor.time()
    if interval.unit in ("month", "year"):
        last_day = calendar.monthrange(here.year, here.month)[1]
        assert here.day == min(anchor.day, last_day)


def test_subtract_interval_mirrors_add_interval_with_clamping() -> None:
    assert subtract_interval(utc(2024, 3, 31, 8), MONTH) == utc(2024, 2, 29, 8)
    assert subtract_interval(utc(2024, 1, 15), Interval("month", 3)) == utc(2023, 10, 15)
    assert subtract_interval(utc(2028, 2, 29), YEAR, 4) == utc(2024, 2, 29)
    assert subtract_interval(utc(2024, 3, 1), Interval("week"), 2) == utc(2024, 2, 16)
    assert subtract_interval(utc(2024, 3, 1), MONTH, 0) == utc(2024, 3, 1)
    with pytest.raises(InvalidInput):
        subtract_interval(utc(2024, 3, 1), MONTH, -1)
    with pytest.raises(InvalidInput):
        subtract_interval(utc(1, 1, 1), MONTH)


def test_calendar_anchor_day_stub_is_prorated_by_days() -> None:
    start = utc(2024, 1, 15)
    end = next_anchor_day(start, 1)
    assert end == utc(2024, 2, 1)
    used = seconds_between(start, end)
    full_start = subtract_interval(end, MONTH)
    assert full_start == utc(2024, 1, 1)
    whole = seconds_between(full_start, end)
    assert (used, whole) == (17 * 86400, 31 * 86400)
    assert prorate(1000, used, whole) == 548  # 17/31 of USD 10.00


@pytest.mark.parametrize(
    ("start", "anchor_day", "expected"),
    [
        (utc(2024, 4, 10, 9), 31, utc(2024, 4, 30)),  # clamped to April's length
        (utc(2024, 4, 30), 31, utc(2024, 5, 31)),  # strictly after start
        (utc(2024, 1, 1), 1, utc(2024, 2, 1)),
        (utc(2024, 1, 31, 0, 0, 1), 31, utc(2024, 2, 29)),
        (utc(2023, 1, 31, 0, 0, 1), 30, utc(2023, 2, 28)),
        (utc(2024, 12, 20), 5, utc(2025, 1, 5)),
        (utc(2024, 3, 4, 23, 59), 5, utc(2024, 3, 5)),
    ],
)
def test_next_anchor_day_is_the_next_matching_midnight(
    start: datetime, anchor_day: int, expected: datetime
) -> None:
    assert next_anchor_day(start, anchor_day) == expected


@pytest.mark.parametrize("anchor_day", [0, 32, True])
def test_next_anchor_day_refuses_impossible_days(anchor_day: int) -> None:
    with pytest.raises(InvalidInput):
        next_anchor_day(utc(2024, 1, 1), anchor_day)


def test_seconds_between_truncates_microseconds() -> None:
    a = utc(2024, 1, 1)
    assert seconds_between(a, a + timedelta(seconds=1, microseconds=999_999)) == 1
    assert seconds_between(a, a) == 0
    with pytest.raises(InvalidInput):
        seconds_between(a + timedelta(seconds=1), a)


@pytest.mark.parametrize(
    ("amount", "interval", "expected"),
    [
        (1000, MONTH, 1000),
        (1001, Interval("month", 2), 501),  # 500.5
        (1000, Interval("month", 3), 333),
        (12000, YEAR, 1000),
        (10000, YEAR, 833),  # 833.33
        (24000, Interval("year", 2), 1000),
        (1000, Interval("week"), 4333),  # 1000 * 52 / 12
        (100, Interval("day"), 3042),  # 100 * 365 / 12 = 3041.67
    ],
)
def test_monthly_amount_normalises_once(amount: int, interval: Interval, expected: int) -> None:
    assert monthly_amount(amount, interval) == expected
