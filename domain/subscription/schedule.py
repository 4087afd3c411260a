"""What falls due on a subscription, and doing it: retries, reminders, trial ends, renewals.

Time is an input: nothing here reads a clock. The Ledger asks `next_due` and runs what is
due up to the time a command takes effect (domain/ledger/due.py).

The reminder rule: one renewal reminder per renewal, `ReminderLeads.annual_days` before it
for plans of a year or longer, `days` before it for shorter plans, and none for a plan whose
period is shorter than twice its lead time (a weekly plan would otherwise be reminded every
other day); a trial gets one notice `trial_days` before it ends. A period or trial that began
inside the lead time is reminded at its start.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from domain.catalog.plan import Plan
from domain.invoicing import discount_for
from domain.periods import Interval, add_interval
from domain.pricing import Pricing, price_for
from domain.subscription.status import PAYING, Due, DueKind, Status

if TYPE_CHECKING:
    from domain.subscription.aggregate import Subscription

# The shortest a period of each unit can be, in days, for the "twice the lead" rule: a
# plan is judged by its shortest period (February for a monthly plan), so the rule never
# depends on the month a period falls in.
_SHORTEST_DAYS = {"day": 1, "week": 7, "month": 28, "year": 365}


@dataclass(frozen=True, slots=True)
class ReminderLeads:
    """How long before a renewal (or a trial's end) the customer is told of it, in days."""

    days: int = 7  # plans shorter than a year
    annual_days: int = 30  # plans of a year or longer
    trial_days: int = 3  # before a trial ends

    def for_interval(self, interval: Interval) -> timedelta | None:
        """The renewal reminder's lead for a plan billed every `interval`, or None."""
        days = self.annual_days if is_annual(interval) else self.days
        shortest = _SHORTEST_DAYS[interval.unit] * interval.count
        if days <= 0 or shortest < 2 * days:
            return None
        return timedelta(days=days)


def is_annual(interval: Interval) -> bool:
    """A plan of a year or longer: yearly, or 12 months and more, or 365 days and more."""
    if interval.unit in ("year", "month"):
        return interval.count * (12 if interval.unit == "year" else 1) >= 12
    return _SHORTEST_DAYS[interval.unit] * interval.count >= 365


def next_due(sub: Subscription, leads: ReminderLeads) -> Due | None:
    """The earliest thing due on this subscription, if anything ever is.

    Never dated before the subscription's last change: work that could not fall due when
    its time came (a reminder or trial notice while paused or set to cancel) is done as
    billing takes up again. Dated earlier, the subscription would refuse it, and the clock
    could never pass it: every later command of the book would be refused.
    """
    due: list[Due] = []
    if sub.status in PAYING:
        for number, invoice in sub.open_invoices.items():
            if invoice.next_retry_at is not None:
                due.append(Due(invoice.next_retry_at, DueKind.RETRY, number))
        due.append(Due(sub.period_end, DueKind.RENEW))
        lead = leads.for_interval(sub.interval)
        if lead and not sub.cancel_at_period_end and sub.reminded_for != sub.period_end:
            remind_at = max(sub.period_end - lead, sub.period_start)
            due.append(Due(remind_at, DueKind.REMIND))
    elif sub.status == Status.TRIALING:
        due.append(Due(sub.period_end, DueKind.TRIAL_END))
        if (
            leads.trial_days > 0
            and not sub.cancel_at_period_end
            and sub.reminded_for != sub.period_end
        ):
            notice_at = max(sub.period_end - timedelta(days=leads.trial_days), sub.period_start)
            due.append(Due(notice_at, DueKind.TRIAL_ENDING))
    if not due:
        return None
    since = sub.modified_on
    return min(d if d.at >= since else replace(d, at=since) for d in due)


def convert_trial(sub: Subscription, at: datetime, meta: dict) -> None:
    """The trial is over: the first paid period starts where the trial ended."""
    sub.check_status(Status.TRIALING, "subscription is not trialing")
    end = add_interval(sub.period_end, sub.interval, 1)
    sub.emit(
        sub.TrialConverted,
        at,
        meta,
        period_start=sub.period_end,
        period_end=end,
        status=Status.ACTIVE,
        mrr=sub.monthly_value(status=Status.ACTIVE, discounted=sub.will_discount()),
    )


def renewal_pricing(sub: Subscription, at: datetime, plan: Plan) -> tuple[int, Pricing]:
    """The price version (and its pricing) a renewal at `at` bills: the one subscribers on
    the subscription's version have been moved to by then, else its own."""
    version = plan.migrated_version_after(sub.plan_version, at) or sub.plan_version
    pricing = plan.pricing_at(version) if version != sub.plan_version else sub.pricing
    return version, pricing


def renewal_amount(sub: Subscription, plan: Plan) -> int:
    """What the next renewal's recurring lines come to before tax: the renewed price for
    the quantity, less the coupon if it still applies (as `billing.recurring_lines`)."""
    _, pricing = renewal_pricing(sub, sub.period_end, plan)
    amount = price_for(pricing, sub.quantity)
    if sub.will_discount():
        assert sub.coupon is not None
        amount += discount_for(sub.coupon, amount, sub.currency)
    return amount


def renew(sub: Subscription, at: datetime, plan: Plan, meta: dict) -> None:
    """Start the next period, at the price version subscribers have been moved to by then."""
    sub.check_paying()
    index = sub.period_index + 1
    start = sub.period_end
    end = add_interval(sub.anchor, sub.interval, index + 1)
    version, pricing = renewal_pricing(sub, at, plan)
    sub.emit(
        sub.Renewed,
        at,
        meta,
        period_index=index,
        period_start=start,
        period_end=end,
        plan_version=version,
        pricing=pricing.to_dict(),
        status=sub.status,
        mrr=sub.monthly_value(status=sub.status, pricing=pricing, discounted=sub.will_discount()),
    )


def remind(sub: Subscription, at: datetime, meta: dict) -> None:
    """Tell the customer what the coming renewal will cost (see ReminderLeads)."""
    sub.emit(
        sub.RenewalReminderIssued,
        at,
        meta,
        currency=sub.currency,
        renews_at=sub.period_end,
        expected_amount=sub.recurring_amount(),
        status=sub.status,
        mrr=sub.mrr,
    )


def warn_trial_ending(sub: Subscription, at: datetime, meta: dict) -> None:
    """Tell the customer the trial ends soon, and what the first period will cost."""
    sub.check_status(Status.TRIALING, "subscription is not trialing")
    sub.emit(
        sub.TrialEndingSoon,
        at,
        meta,
        currency=sub.currency,
        trial_end=sub.period_end,
        expected_amount=sub.recurring_amount(),
        status=sub.status,
        mrr=sub.mrr,
    )
