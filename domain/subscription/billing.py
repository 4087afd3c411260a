"""What a subscription is billed: its recurring lines, the invoice it issues against the
customer's credit, and the credit notes (refunds) against its paid invoices."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from domain.errors import InvalidAmount, InvalidTransition
from domain.invoicing import Line, compute_totals, credit_note_lines, discount_for, tax_line
from domain.money import prorate
from domain.periods import seconds_between, subtract_interval
from domain.pricing import describe

if TYPE_CHECKING:
    from domain.subscription.aggregate import Subscription
    from domain.subscription.events import CreditNoteIssued, Invoiced

REFUND, CREDIT = "refund", "credit"  # how a credit note gives the money back
PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"  # a refund at the gateway
MANUAL_PAYMENT = "RecordPayment"  # the command that records money paid outside the gateway


@dataclass(frozen=True, slots=True)
class Refundable:
    """An invoice with money due, as refunds see it: what was paid, how, and credited since."""

    total: int
    tax: int
    paid: int = 0
    reference: str = ""  # the gateway's charge (or the bank's reference)
    by_gateway: bool = False
    credited: int = 0  # the sum of the credit notes issued against it

    @property
    def left(self) -> int:
        return self.paid - self.credited

    def settled(self, amount: int, reference: str, by_gateway: bool) -> Refundable:
        return replace(self, paid=amount, reference=reference, by_gateway=by_gateway)

    def credit(self, amount: int) -> Refundable:
        return replace(self, credited=self.credited + amount)


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
    credit_balance: int,
    at: datetime,
    meta: dict,
) -> Invoiced:
    """Record an invoice of `lines` plus tax, less the customer's credit (`credit_balance`, in
    the subscription's currency); never bill twice. The caller moves the customer's balance."""
    recurring = any(line.kind == "recurring" for line in lines)
    if recurring:
        sub.check_not_billed(sub.period_start)
    subtotal = sum(line.amount for line in lines)
    tax = tax_line(subtotal, tax_rate_ppm, country)
    all_lines = [*lines, tax] if tax else list(lines)
    totals = compute_totals(all_lines, tax_rate_ppm, credit_balance)
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
        customer_credit=True,
        status=sub.status,
        mrr=sub.monthly_value(status=sub.status, discounted=discounted),
    )
    invoiced = sub.pending_events[-1]
    assert isinstance(invoiced, sub.Invoiced)
    return invoiced


# ---- credit notes and refunds ------------------------------------------------------------


def issue_credit_note(
    sub: Subscription,
    *,
    number: str,
    invoice: str,
    amount: int | None,
    reason: str,
    at: datetime,
    meta: dict,
) -> CreditNoteIssued:
    """Credit a paid invoice, in full (`amount` None) or in part, never beyond what was paid.

    Paid through the gateway: the money goes back there (a RefundRequested, made after
    commit by the payments worker). Paid outside it (a bank transfer): to the customer's
    credit, which the caller grants; the ledger cannot send a bank transfer back.
    """
    paid = check_refundable(sub, invoice)
    amount = paid.left if amount is None else amount
    if not 0 < amount <= paid.left:
        raise InvalidAmount(
            f"invoice {invoice} has {paid.left:,} minor units of {sub.currency} left to refund"
            f" (paid {paid.paid:,}, credited {paid.credited:,} before)"
        )
    method = REFUND if paid.by_gateway else CREDIT
    lines = credit_note_lines(amount, invoice, paid.total, paid.tax, refund=method == REFUND)
    sub.emit(
        sub.CreditNoteIssued,
        at,
        meta,
        currency=sub.currency,
        number=number,
        invoice=invoice,
        lines=[line.to_dict() for line in lines],
        amount=amount,
        reason=reason,
        method=method,
        status=sub.status,
        mrr=sub.mrr,
    )
    if method == REFUND:
        sub.emit(
            sub.RefundRequested,
            at,
            meta,
            currency=sub.currency,
            credit_note=number,
            invoice_number=invoice,
            charge_reference=paid.reference,
            amount=amount,
            idempotency_key=f"{number}:refund",  # the credit note's own number: never reused
            status=sub.status,
            mrr=sub.mrr,
        )
    issued = sub.pending_events[-1 if method == CREDIT else -2]
    assert isinstance(issued, sub.CreditNoteIssued)
    return issued


def record_refund(
    sub: Subscription,
    *,
    credit_note: str,
    succeeded: bool,
    reference: str,
    failure_code: str | None,
    failure_message: str | None,
    at: datetime,
    meta: dict,
) -> bool:
    """Record the gateway's answer to a refund; False if it was recorded already."""
    note = check_credit_note(sub, credit_note)
    if note.status != PENDING:
        return False  # the worker may deliver an outcome twice: the first one stands
    if succeeded:
        sub.emit(
            sub.RefundSucceeded,
            at,
            meta,
            currency=sub.currency,
            credit_note=credit_note,
            invoice_number=note.invoice,
            amount=note.amount,
            reference=reference,
            status=sub.status,
            mrr=sub.mrr,
        )
    else:
        sub.emit(
            sub.RefundFailed,
            at,
            meta,
            currency=sub.currency,
            credit_note=credit_note,
            invoice_number=note.invoice,
            amount=note.amount,
            failure_code=failure_code or "refund_failed",
            failure_message=failure_message or "",
            status=sub.status,
            mrr=sub.mrr,
        )
    return True


def check_refundable(sub: Subscription, invoice: str) -> Refundable:
    """Only money paid can be given back: an invoice of this subscription, paid, in full."""
    paid = sub.refundable.get(invoice)
    if paid is None:
        raise InvalidTransition(
            f"subscription '{sub.subscription_id}' has no invoice {invoice} with an amount due:"
            " nothing was paid on it to refund"
        )
    if paid.paid == 0:
        raise InvalidTransition(f"invoice {invoice} is not paid: there is nothing to refund")
    if paid.left == 0:
        raise InvalidTransition(f"invoice {invoice} has been refunded in full already")
    return paid


def check_credit_note(sub: Subscription, number: str) -> CreditNote:
    note = sub.credit_notes.get(number)
    if note is None:
        raise InvalidTransition(f"subscription '{sub.subscription_id}' has no credit note {number}")
    if note.method != REFUND:
        raise InvalidTransition(f"credit note {number} went to the customer's credit, not a refund")
    return note


@dataclass(frozen=True, slots=True)
class CreditNote:
    """A credit note issued on this subscription, and where its refund stands."""

    invoice: str
    amount: int
    method: str
    status: str  # pending | succeeded | failed for a refund; "" for credit to the balance


def move_credit(sub: Subscription, at: datetime, meta: dict) -> int:
    """Hand the credit an earlier version kept on the subscription to its customer; how much.

    The caller grants the customer that amount in the same transaction.
    """
    amount = sub.credit_balance
    if amount > 0:
        sub.emit(
            sub.CreditMovedToCustomer,
            max(at, sub.modified_on),
            meta,
            currency=sub.currency,
            amount=amount,
            status=sub.status,
            mrr=sub.mrr,
        )
    return amount
