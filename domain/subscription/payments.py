"""Collecting a subscription's invoices: a charge asked for, its outcome, a payment by hand.

The gateway is never called here: `request_charge` records the intent (ChargeRequested,
with an idempotency key made of the invoice number and the attempt), a payments worker
charges after commit and its answer comes back through `record_outcome`. A failed charge
makes a paying subscription past due; the last failed retry churns it. Paying the last
failing invoice makes it active again.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from domain.errors import InvalidTransition
from domain.subscription.status import LIVE, PAYING, Status

if TYPE_CHECKING:
    from domain.subscription.aggregate import Subscription


def charge_key(number: str, attempt: int) -> str:
    """The idempotency key of charge `attempt` of invoice `number`: nothing a retry changes."""
    return f"{number}:{attempt}"


def request_charge(sub: Subscription, number: str, at: datetime, meta: dict) -> int | None:
    """Ask for the next charge of an open invoice; its attempt, or None if one is pending."""
    invoice = sub.check_open_invoice(number)
    if invoice.charging is not None:
        return None  # one charge at a time per invoice: its outcome decides what comes next
    attempt = invoice.next_attempt
    sub.emit(
        sub.ChargeRequested,
        at,
        meta,
        currency=sub.currency,
        number=number,
        attempt=attempt,
        amount=invoice.amount_due,
        idempotency_key=charge_key(number, attempt),
        status=sub.status,
        mrr=sub.mrr,
    )
    return attempt


def is_pending(sub: Subscription, number: str, attempt: int) -> bool:
    """Whether charge `attempt` of invoice `number` was asked for and has no outcome yet."""
    pending = sub.charging.get(number)
    return pending is not None and pending.attempt == attempt


def record_outcome(
    sub: Subscription,
    *,
    number: str,
    attempt: int,
    succeeded: bool,
    reference: str,
    code: str | None,
    message: str | None,
    next_retry_at: datetime | None,
    at: datetime,
    meta: dict,
) -> bool:
    """Record the gateway's answer to a pending charge; False if it was no longer pending.

    A success is recorded even when the invoice was written off meanwhile: the money was
    taken. A failure of a written-off invoice is recorded without dunning.
    """
    if not is_pending(sub, number, attempt):
        return False
    amount = sub.charging[number].amount
    if succeeded:
        _paid(sub, number, amount, attempt, reference, at, meta)
    else:
        _failed(sub, number, amount, attempt, code, message, reference, next_retry_at, at, meta)
    return True


def record_failure(
    sub: Subscription,
    *,
    number: str,
    code: str,
    message: str,
    next_retry_at: datetime | None,
    at: datetime,
    meta: dict,
) -> None:
    """A charge that could not even be asked for (no payment method, customer erased)."""
    invoice = sub.check_open_invoice(number)
    attempt = invoice.next_attempt
    _failed(sub, number, invoice.amount_due, attempt, code, message, "", next_retry_at, at, meta)


def _failed(
    sub: Subscription,
    number: str,
    amount: int,
    attempt: int,
    code: str | None,
    message: str | None,
    reference: str,
    next_retry_at: datetime | None,
    at: datetime,
    meta: dict,
) -> None:
    open_ = number in sub.open_invoices
    status = Status.PAST_DUE if open_ and sub.status in PAYING else sub.status
    reason = code or "declined"
    sub.emit(
        sub.PaymentFailed,
        at,
        meta,
        currency=sub.currency,
        number=number,
        amount=amount,
        attempt=attempt,
        reason=reason,
        reference=reference,
        next_retry_at=next_retry_at if open_ else None,
        message=message,
        status=status,
        mrr=sub.monthly_value(status=status),
    )
    if open_ and next_retry_at is None and sub.status in LIVE:
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
    """A payment made outside the gateway (a bank transfer): it settles the invoice exactly.

    Not while a charge of that invoice is pending at the gateway: its outcome could collect
    it a second time. A charge asked for in this very transaction (a retry that fell due
    just before the payment) has reached no gateway yet: the payment takes its place, and
    the payments worker, finding it no longer pending, never makes it.
    """
    sub.check_settles(number, amount, reference, currency)
    invoice = sub.open_invoices[number]
    if invoice.charging is not None and not _requested_here(sub, number, invoice.charging):
        raise InvalidTransition(
            f"invoice {number} has a card charge in progress (attempt {invoice.charging});"
            " record a payment by hand once it has failed"
        )
    _paid(sub, number, amount, invoice.next_attempt, reference, at, meta)


def _requested_here(sub: Subscription, number: str, attempt: int) -> bool:
    """Whether that charge was asked for in the transaction under way (not yet recorded)."""
    return any(
        isinstance(e, sub.ChargeRequested) and e.number == number and e.attempt == attempt
        for e in sub.pending_events
    )


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
