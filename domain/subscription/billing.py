"""What a subscription is billed: its recurring lines, and the invoice it issues."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from domain.invoicing import Line, compute_totals, discount_for, tax_line
from domain.money import prorate
from domain.periods import seconds_between, subtract_interval
from domain.pricing import describe

if TYPE_CHECKING:
    from domain.subscription.aggregate import Subscription
    from domain.subscription.events import Invoiced


def recurring_lines(sub: Subscription, plan_name: str) -> list[Line]:
    """The current period's recurring line (prorated when it is a partial first period)."""
    amount = sub.recurring_amount()
    if sub.period_index < 0:  # calendar-anchored partial first period
        amount = prorate(  # over the full period the partial one is a part of
            amount,
            seconds_between(sub.period_start, sub.period_end),
            seconds_between(subtract_interval(sub.anchor, sub.interval), sub.anchor),
        )
    desc = f"{plan_name} ({describe(sub.pricing, sub.quantity, sub.currency)})"
    lines = [Line("recurring", desc, amount, sub.period_start, sub.period_end)]
    if sub.will_discount():
        assert sub.coupon is not None
        off = discount_for(sub.coupon, amount, sub.currency)
        if off:
            lines.append(
                Line("discount", f"Coupon {sub.coupon.code}", off, sub.period_start, sub.period_end)
            )
    return lines


def issue_invoice(
    sub: Subscription,
    *,
    number: str,
    reason: str,
    lines: list[Line],
    tax_rate_ppm: int,
    country: str,
    at: datetime,
    meta: dict,
) -> Invoiced:
    """Record an invoice of `lines` plus tax, less the customer's credit; never bill twice."""
    recurring = any(line.kind == "recurring" for line in lines)
    if recurring:
        sub.check_not_billed(sub.period_start)
    subtotal = sum(line.amount for line in lines)
    tax = tax_line(subtotal, tax_rate_ppm, country)
    all_lines = [*lines, tax] if tax else list(lines)
    totals = compute_totals(all_lines, tax_rate_ppm, sub.credit_balance)
    discounted = any(line.kind == "discount" for line in lines) if recurring else sub.discounted
    periods_left = sub.coupon_periods_left
    if recurring and discounted and periods_left is not None:
        periods_left -= 1
    period_start = min(line.period_start for line in lines if line.period_start)
    period_end = max(line.period_end for line in lines if line.period_end)
    sub.emit(
        sub.Invoiced,
        at,
        meta,
        currency=sub.currency,
        number=number,
        reason=reason,
        lines=[line.to_dict() for line in all_lines],
        subtotal=totals.subtotal,
        tax=totals.tax,
        total=totals.total,
        credit_applied=totals.credit_applied,
        amount_due=totals.amount_due,
        credit_balance_after=totals.credit_balance_after,
        period_start=period_start,
        period_end=period_end,
        discounted=discounted,
        coupon_periods_left=periods_left,
        status=sub.status,
        mrr=sub.monthly_value(status=sub.status, discounted=discounted),
    )
    invoiced = sub.pending_events[-1]
    assert isinstance(invoiced, sub.Invoiced)
    return invoiced
