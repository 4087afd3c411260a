"""Revenue recognition: an amount earned ratably over its service period, by the second.

The rule finance and the analysts' SQL share (README, "Finance figures"): an item is an
amount A (signed, minor units, net of tax) billed at document time D for the service period
[S, E). By instant T it has recognised nothing before D, nothing up to S, all of A from E on,
and in between A x (T - S) / (E - S) in whole seconds, truncated toward zero so a credit
mirrors a charge. A zero-length period is recognised at once from S (and D). Each item's
monthly schedule telescopes from these cumulative figures, so it sums to A exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from domain.periods import require_utc, seconds_between

_ONE_SECOND = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Item:
    """One recognisable amount: an invoice line (net of tax) or a credit note line (negated)."""

    amount: int
    start: datetime
    end: datetime
    doc_time: datetime

    def cumulative(self, at: datetime) -> int:
        return cumulative(self.amount, self.start, self.end, self.doc_time, at)


def cumulative(
    amount: int, start: datetime, end: datetime, doc_time: datetime, at: datetime
) -> int:
    """What the item has recognised by instant `at` (see the module's docstring)."""
    for value, what in ((start, "start"), (end, "end"), (doc_time, "doc_time"), (at, "at")):
        require_utc(value, what)
    if at < doc_time:
        return 0
    if end <= start:
        return amount if at >= start else 0
    if at <= start:
        return 0
    if at >= end:
        return amount
    part = abs(amount) * seconds_between(start, at) // seconds_between(start, end)
    return part if amount >= 0 else -part


def credit_period(
    doc_time: datetime, invoice_start: datetime, invoice_end: datetime
) -> tuple[datetime, datetime]:
    """A credit note line's period: what is left of the credited invoice's period at D
    (un-recognising only the future); a note issued after that period ends is taken at D."""
    if doc_time >= invoice_end:
        return doc_time, doc_time
    return max(doc_time, invoice_start), invoice_end


def month_start(at: datetime) -> datetime:
    """The first instant of `at`'s UTC calendar month."""
    require_utc(at, "at")
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def next_month(at: datetime) -> datetime:
    """The first instant of the UTC calendar month after `at`'s."""
    require_utc(at, "at")
    year, month = (at.year + 1, 1) if at.month == 12 else (at.year, at.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def month_key(at: datetime) -> str:
    return f"{at.year:04d}-{at.month:02d}"


def months(start: datetime, end: datetime) -> list[tuple[str, datetime, datetime]]:
    """The UTC calendar months [start, end) touches, each clipped to the window:
    (key 'YYYY-MM', from, to)."""
    out = []
    cursor = start
    while cursor < end:
        boundary = min(next_month(cursor), end)
        out.append((month_key(cursor), cursor, boundary))
        cursor = boundary
    return out


def schedule(item: Item) -> list[tuple[str, int]]:
    """The item's recognition by UTC calendar month, months with nothing left out; it sums
    to the item's amount exactly, because each month is cum(month end) - cum(month start)."""
    first = month_start(min(item.start, item.doc_time) - _ONE_SECOND)  # cum(first) is 0
    last = max(item.end, item.doc_time, item.start)
    out = []
    for key, a, b in months(first, next_month(last)):
        amount = item.cumulative(b) - item.cumulative(a)
        if amount:
            out.append((key, amount))
    return out


def recognised(items: list[Item], at: datetime) -> int:
    """Recognised by instant `at`, over all items."""
    return sum(item.cumulative(at) for item in items)


def billed_net(items: list[Item], at: datetime) -> int:
    """Billed (net of tax and credit notes) by `at`: the items issued by then."""
    return sum(item.amount for item in items if item.doc_time <= at)


def deferred(items: list[Item], at: datetime) -> int:
    """Billed by `at` and not yet recognised: the deferred revenue balance."""
    return sum(item.amount - item.cumulative(at) for item in items if item.doc_time <= at)
