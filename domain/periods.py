"""Billing periods: calendar arithmetic from a fixed anchor, so month ends never drift."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from domain.errors import InvalidInput, InvalidInterval
from domain.limits import MAX_INTERVAL_COUNT, quote
from domain.money import round_half_up

UNITS = ("day", "week", "month", "year")
_FIXED_DAYS = {"day": 1, "week": 7}
_MONTHS = {"month": 1, "year": 12}
_ALIASES = {
    "daily": "day",
    "weekly": "week",
    "monthly": "month",
    "yearly": "year",
    "annual": "year",
    "annually": "year",
}
_ONE_SECOND = timedelta(seconds=1)


def require_utc(value: object, what: str = "time") -> datetime:
    """Refuse naive or non-UTC datetimes: billing instants must mean one moment everywhere."""
    if not isinstance(value, datetime):
        raise InvalidInput(f"{what} must be a datetime, got {type(value).__name__}")
    offset = value.utcoffset()
    if offset is None:
        raise InvalidInput(f"{what} must be timezone-aware UTC, got a naive datetime")
    if offset != timedelta(0):
        raise InvalidInput(f"{what} must be in UTC, got offset {offset}")
    return value


def _require_count(value: object, what: str, minimum: int) -> int:
    """Counts are plain ints: bools and floats would slip through arithmetic unnoticed."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInput(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Interval:
    """How often a plan bills: a unit and a count ("3 months")."""

    unit: str
    count: int = 1

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise InvalidInterval(f"the interval must be one of {', '.join(UNITS)}")
        most = MAX_INTERVAL_COUNT[self.unit]
        if (
            isinstance(self.count, bool)
            or not isinstance(self.count, int)
            or not 1 <= self.count <= most
        ):
            raise InvalidInterval(
                f"the interval count of a {self.unit}ly plan must be from 1 to {most:,}"
                " (at most ten years)"
            )

    @classmethod
    def parse(cls, unit: str, count: int | str = 1) -> Interval:
        """Accept what people type ("months", "Monthly", count "3") and normalise it."""
        if not isinstance(unit, str):
            raise InvalidInterval(f"the interval must be one of {', '.join(UNITS)}")
        word = unit.strip().lower()
        word = _ALIASES.get(word, word)
        if word.endswith("s") and word[:-1] in UNITS:
            word = word[:-1]
        if isinstance(count, str):
            text = count.strip()
            if not (text.isascii() and text.isdigit()) or len(text) > 6:
                raise InvalidInterval(
                    f"the interval count must be a whole number, not {quote(count)}"
                )
            count = int(text)
        return cls(word, count)

    def __str__(self) -> str:
        return self.unit if self.count == 1 else f"{self.count} {self.unit}s"

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-able form for events."""
        return {"unit": self.unit, "count": self.count}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Interval:
        """Inverse of to_dict, validating again because stored data is input too."""
        try:
            return cls(data["unit"], data.get("count", 1))  # type: ignore[arg-type]
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidInterval("an interval needs a unit and a count") from exc


def add_interval(anchor: datetime, interval: Interval, n: int) -> datetime:
    """The anchor advanced n intervals, computed from the anchor so clamped days don't stick."""
    require_utc(anchor, "anchor")
    _require_count(n, "n", 0)
    return _shift(anchor, interval, n)


def subtract_interval(anchor: datetime, interval: Interval, n: int = 1) -> datetime:
    """The anchor moved back n intervals: the full period a calendar-billing stub is a part of."""
    require_utc(anchor, "anchor")
    _require_count(n, "n", 0)
    return _shift(anchor, interval, -n)


def _shift(anchor: datetime, interval: Interval, n: int) -> datetime:
    try:
        if interval.unit in _FIXED_DAYS:
            return anchor + timedelta(days=_FIXED_DAYS[interval.unit] * interval.count * n)
        months = anchor.year * 12 + (anchor.month - 1) + _MONTHS[interval.unit] * interval.count * n
        year, month0 = divmod(months, 12)
        day = min(anchor.day, calendar.monthrange(year, month0 + 1)[1])
        return anchor.replace(year=year, month=month0 + 1, day=day)
    except (OverflowError, ValueError) as exc:
        raise InvalidInput(f"{n} x {interval} from {anchor.isoformat()} is out of range") from exc


def next_anchor_day(start: datetime, anchor_day: int) -> datetime:
    """First midnight strictly after start on the anchor day (clamped), ending a calendar stub."""
    require_utc(start, "start")
    if isinstance(anchor_day, bool) or not isinstance(anchor_day, int) or not 1 <= anchor_day <= 31:
        raise InvalidInput(f"anchor day must be an integer in 1..31, got {anchor_day!r}")
    year, month = start.year, start.month
    for _ in range(2):  # this month's anchor day, else next month's: always strictly after
        day = min(anchor_day, calendar.monthrange(year, month)[1])
        candidate = datetime(year, month, day, tzinfo=UTC)
        if candidate > start:
            return candidate
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    raise AssertionError("unreachable: next month's anchor day is always after start")


def seconds_between(a: datetime, b: datetime) -> int:
    """Whole seconds from a to b; microseconds are truncated so proration works in seconds."""
    require_utc(a, "a")
    require_utc(b, "b")
    if b < a:
        raise InvalidInput(f"{b.isoformat()} is before {a.isoformat()}")
    return (b - a) // _ONE_SECOND


def monthly_amount(amount: int, interval: Interval) -> int:
    """Normalise a per-period price to one month (MRR), rounding once at the end."""
    count = interval.count
    if interval.unit == "month":
        return round_half_up(amount, count)
    if interval.unit == "year":
        return round_half_up(amount, 12 * count)
    if interval.unit == "week":
        return round_half_up(amount * 52, 12 * count)
    return round_half_up(amount * 365, 12 * count)
