"""What falls due on a subscription, and doing it: retries, reminders, trial ends, renewals.

Time is an input: nothing here reads a clock. The Ledger asks `next_due` and runs what is
due up to the time a command takes effect (domain/ledger/due.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from domain.catalog.plan import Plan
from domain.periods import add_interval
from domain.subscription.status import PAYING, Due, DueKind, Status

if TYPE_CHECKING:
    from domain.subscription.aggregate import Subscription


def next_due(sub: Subscription, reminder_days: int, remind_all: bool) -> Due | None:
    """The earliest thing due on this subscription, if anything ever is."""
    due: list[Due] = []
    if sub.status in PAYING:
        for number, invoice in sub.open_invoices.items():
            if invoice.next_retry_at is not None:
                due.append(Due(invoice.next_retry_at, DueKind.RETRY, number))
        due.append(Due(sub.period_end, DueKind.RENEW))
        wants_reminder = remind_all or sub.interval.unit == "year"
        if (
            wants_reminder
            and reminder_days > 0
            and not sub.cancel_at_period_end
            and sub.reminded_for != sub.period_end
        ):
            remind_at = max(sub.period_end - timedelta(days=reminder_days), sub.period_start)
            due.append(Due(remind_at, DueKind.REMIND))
    elif sub.status == Status.TRIALING:
        due.append(Due(sub.period_end, DueKind.TRIAL_END))
    return min(due) if due else None


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


def renew(sub: Subscription, at: datetime, plan: Plan, meta: dict) -> None:
    """Start the next period, at the price version subscribers have been moved to by then."""
    sub.check_paying()
    index = sub.period_index + 1
    start = sub.period_end
    end = add_interval(sub.anchor, sub.interval, index + 1)
    version = plan.migrated_version_after(sub.plan_version, at) or sub.plan_version
    pricing = plan.pricing_at(version) if version != sub.plan_version else sub.pricing
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
    """Tell the customer what the coming renewal will cost (yearly plans, or all if asked)."""
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
