"""Payments: a charge's outcome fed back by the payments worker, or a payment recorded by hand."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from domain import commands as c
from domain.ledger.registry import handles
from domain.ledger.unit_of_work import UnitOfWork
from domain.subscription import Status
from domain.subscription.payments import is_pending, record_outcome
from domain.subscription.payments import record_payment as settle

if TYPE_CHECKING:
    from domain.ledger.service import Ledger


@handles(c.RecordPayment)
def record_payment(ledger: Ledger, cmd: c.RecordPayment, uow: UnitOfWork) -> dict[str, Any]:
    sub = ledger.load_subscription(uow, cmd.subscription_id, cmd)
    settle(sub, cmd.invoice_number, cmd.amount, cmd.reference, cmd.at, cmd.meta(), cmd.currency)
    return {
        "subscription_id": cmd.subscription_id,
        "invoice": cmd.invoice_number,
        "status": sub.status.value,
    }


@handles(c.RecordChargeOutcome)
def record_charge_outcome(
    ledger: Ledger, cmd: c.RecordChargeOutcome, uow: UnitOfWork
) -> dict[str, Any]:
    """Record the gateway's answer; dunning counts from the invoice's first failure.

    An outcome for an attempt that is no longer pending records nothing (`recorded`: false).
    """
    sub = ledger.load_subscription(uow, cmd.subscription_id, cmd)
    number, attempt = cmd.invoice_number, cmd.attempt
    next_retry = None
    invoice = sub.open_invoices.get(number)
    if not cmd.succeeded and invoice is not None and is_pending(sub, number, attempt):
        erased = ledger.load_customer(uow, sub.customer_id).erased
        first_failed = invoice.first_failed_at or cmd.at
        if not erased:
            next_retry = ledger.settings.dunning.next_retry_at(first_failed, attempt)
        if next_retry is not None and next_retry < cmd.at:  # an answer that came late:
            next_retry = cmd.at  # the retry it missed is due at once, never in the past
    before = sub.status
    recorded = record_outcome(
        sub,
        number=number,
        attempt=attempt,
        succeeded=cmd.succeeded,
        reference=cmd.reference,
        code=cmd.decline_code,
        message=cmd.decline_message,
        next_retry_at=next_retry,
        at=cmd.at,
        meta=cmd.meta(),
    )
    return {
        "subscription_id": cmd.subscription_id,
        "invoice": number,
        "attempt": attempt,
        "recorded": recorded,
        "status": sub.status.value,
        "churned": before != Status.CANCELED and sub.status == Status.CANCELED,
    }
