"""Collecting a subscription's invoices: a gateway's answer, or a payment recorded by hand.

A failed charge makes a paying subscription past due; the last failed retry churns it.
Paying the last failing invoice makes it active again.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from domain.ports import ChargeResult
from domain.subscription.status import LIVE, PAYING, Status

if TYPE_CHECKING:
    from domain.subscription.aggregate import Subscription


def record_charge(
    sub: Subscription,
    *,
    number: str,
    result: ChargeResult,
    attempt: int,
    next_retry_at: datetime | None,
    at: datetime,
    meta: dict,
) -> None:
    """Record the gateway's answer to charge `attempt`; no retry left after a failure churns."""
    invoice = sub.check_open_invoice(number)
    if result.succeeded:
        _paid(sub, number, invoice.amount_due, attempt, result.reference, at, meta)
        return
    status = Status.PAST_DUE if sub.status in PAYING else sub.status
    reason = result.reason or "declined"
    sub.emit(
        sub.PaymentFailed,
        at,
        meta,
        currency=sub.currency,
        number=number,
        amount=invoice.amount_due,
        attempt=attempt,
        reason=reason,
        reference=result.reference,
        next_retry_at=next_retry_at,
        status=status,
        mrr=sub.monthly_value(status=status),
    )
    if next_retry_at is None and sub.status in LIVE:
        sub.churn("involuntary", f"payment_failed:{reason}", at, meta)


def record_payment(
    sub: Subscription,
    number: str,
    amount: int,
    reference: str,
    at: datetime,
    meta: dict,
    currency: str | None = None,
) -> None:
    """A payment made outside the gateway (a bank transfer): it settles the invoice exactly."""
    sub.check_settles(number, amount, reference, currency)
    attempt = sub.open_invoices[number].next_attempt
    _paid(sub, number, amount, attempt, reference, at, meta)


def _paid(
    sub: Subscription,
    number: str,
    amount: int,
    attempt: int,
    reference: str,
    at: datetime,
    meta: dict,
) -> None:
    others_failing = any(inv.failures for n, inv in sub.open_invoices.items() if n != number)
    status = sub.status
    if status == Status.PAST_DUE and not others_failing:
        status = Status.ACTIVE
    sub.emit(
        sub.PaymentSucceeded,
        at,
        meta,
        currency=sub.currency,
        number=number,
        amount=amount,
        attempt=attempt,
        reference=reference,
        status=status,
        mrr=sub.monthly_value(status=status),
    )
