"""Changes a customer asks for: another plan or quantity, cancel, pause, resume, reactivate."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from domain.catalog.plan import Plan
from domain.errors import InvalidInput, InvalidTransition
from domain.invoicing import Line, period_price, proration_lines
from domain.periods import add_interval
from domain.pricing import Pricing, describe, price_for
from domain.subscription.billing import recurring_lines
from domain.subscription.status import LIVE, Status

if TYPE_CHECKING:
    from domain.subscription.aggregate import Subscription


def change_plan(
    sub: Subscription,
    *,
    plan: Plan,
    quantity: int,
    plan_name_old: str,
    at: datetime,
    meta: dict,
    reason: str = "customer_request",
) -> list[Line]:
    """Move to another plan or quantity now; returns the lines to invoice (prorated)."""
    sub.check_live()
    sub.check_quantity(quantity, plan)
    sub.check_plan_currency(plan)
    pricing, version = plan.pricing, plan.price_version
    if plan.plan_id == sub.plan_id and quantity == sub.quantity and version == sub.plan_version:
        raise InvalidInput("that is the subscription's current plan and quantity")
    if plan.plan_id != sub.plan_id:
        plan.check_open()
    sub.check_in_period(at)
    trialing = sub.status == Status.TRIALING
    new_cycle = plan.interval != sub.interval and not trialing
    lines = _change_lines(sub, plan, pricing, quantity, plan_name_old, at, new_cycle, trialing)
    if plan.plan_id == sub.plan_id and version == sub.plan_version:
        sub.emit(
            sub.QuantityChanged,
            at,
            meta,
            quantity=quantity,
            status=sub.status,
            mrr=sub.monthly_value(status=sub.status, quantity=quantity),
        )
        return lines
    if new_cycle:  # a new interval starts a new billing cycle now
        anchor, start, end = at, at, add_interval(at, plan.interval, 1)
    else:
        anchor, start, end = sub.anchor, sub.period_start, sub.period_end
    sub.emit(
        sub.PlanChanged,
        at,
        meta,
        from_plan_id=sub.plan_id,
        plan_id=plan.plan_id,
        plan_version=version,
        pricing=pricing.to_dict(),
        interval=plan.interval.to_dict(),
        quantity=quantity,
        anchor=anchor,
        period_start=start,
        period_end=end,
        reason=reason,
        status=sub.status,
        mrr=sub.monthly_value(
            status=sub.status, pricing=pricing, quantity=quantity, interval=plan.interval
        ),
    )
    if anchor == at and not trialing:  # the new cycle's first period, billed now
        lines = [*lines, *recurring_lines(sub, plan.name)]
    return lines


def _change_lines(
    sub: Subscription,
    plan: Plan,
    pricing: Pricing,
    quantity: int,
    plan_name_old: str,
    at: datetime,
    new_cycle: bool,
    trialing: bool,
) -> list[Line]:
    """The proration of a change: nothing in a trial; for a new cycle only the unused credit.

    Both sides are at the period's price as the customer pays it: in a period billed with
    a discount, the unused-time credit is a share of what was paid after the coupon (not
    of the list price), and the remaining time on the new plan is charged after the same
    coupon, as the period it belongs to was discounted.
    """
    if trialing:
        return []
    old_desc = f"{plan_name_old} ({describe(sub.pricing, sub.quantity, sub.currency)})"
    new_desc = f"{plan.name} ({describe(pricing, quantity, sub.currency)})"
    coupon = sub.coupon if sub.discounted else None
    old_amount = period_price(sub.recurring_amount(), coupon, sub.currency)
    new_price = period_price(price_for(pricing, quantity), coupon, sub.currency)
    new_amount = 0 if new_cycle else new_price
    note = f", less coupon {coupon.code}" if coupon else ""
    lines = proration_lines(
        old_amount, new_amount, sub.period_start, sub.period_end, at, old_desc, new_desc, note
    )
    if new_cycle:  # the new period is billed in full; the old one's unused rest is credited
        return [ln for ln in lines if ln.kind == "proration_credit"]
    return lines


def cancel(sub: Subscription, *, immediately: bool, reason: str, at: datetime, meta: dict) -> None:
    """Churn now, or at the end of the period already paid for."""
    sub.check_live()
    if immediately:
        sub.churn("voluntary", reason, at, meta)
        return
    if sub.cancel_at_period_end:
        raise InvalidTransition("cancellation is already scheduled")
    sub.emit(
        sub.CancellationScheduled,
        at,
        meta,
        cancel_at=sub.period_end,
        reason=reason,
        status=sub.status,
        mrr=sub.mrr,
    )


def _next_cycle(sub: Subscription, at: datetime) -> tuple[datetime, datetime, datetime, bool]:
    """(anchor, start, end, new): keep a period already paid for, else start one at `at`."""
    if sub.billed_through is not None and at < sub.billed_through:
        return sub.anchor, sub.period_start, sub.period_end, False
    return at, at, add_interval(at, sub.interval, 1), True


def reactivate(sub: Subscription, *, plan: Plan, at: datetime, meta: dict) -> bool:
    """Withdraw a scheduled cancellation, or restart after churn; True if a new period."""
    if sub.status in LIVE and sub.cancel_at_period_end:
        sub.emit(
            sub.Reactivated,
            at,
            meta,
            kind="unscheduled",
            anchor=sub.anchor,
            period_start=sub.period_start,
            period_end=sub.period_end,
            plan_version=sub.plan_version,
            pricing=sub.pricing.to_dict(),
            status=sub.status,
            mrr=sub.mrr,
        )
        return False
    sub.check_status(
        Status.CANCELED,
        "only a canceled subscription or a scheduled cancellation can be reactivated",
    )
    anchor, start, end, new = _next_cycle(sub, at)
    version, pricing = sub.plan_version, sub.pricing
    if new:
        plan.check_open()
        version, pricing = plan.price_version, plan.pricing
    sub.emit(
        sub.Reactivated,
        at,
        meta,
        kind="restarted",
        anchor=anchor,
        period_start=start,
        period_end=end,
        plan_version=version,
        pricing=pricing.to_dict(),
        status=Status.ACTIVE,
        mrr=sub.monthly_value(
            status=Status.ACTIVE,
            pricing=pricing,
            discounted=sub.discounted if not new else sub.will_discount(),
        ),
    )
    return new


def pause(sub: Subscription, at: datetime, meta: dict) -> None:
    sub.check_status(
        Status.ACTIVE, f"only an active subscription can be paused (this one is {sub.status})"
    )
    sub.emit(sub.Paused, at, meta, status=Status.PAUSED, mrr=0)


def resume(sub: Subscription, at: datetime, meta: dict) -> bool:
    """Resume billing; True if a new period starts (and must be invoiced)."""
    sub.check_status(Status.PAUSED, "subscription is not paused")
    anchor, start, end, new = _next_cycle(sub, at)
    sub.emit(
        sub.Resumed,
        at,
        meta,
        anchor=anchor,
        period_start=start,
        period_end=end,
        status=Status.ACTIVE,
        mrr=sub.monthly_value(
            status=Status.ACTIVE,
            discounted=sub.discounted if not new else sub.will_discount(),
        ),
    )
    return new
