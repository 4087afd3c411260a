"""Credit: granting a customer credit, refunding an invoice (a credit note), and the
gateway's answer to a refund. The credit balance is the customer's, per currency."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from domain import commands as c
from domain.ledger.billing import credit_note_sequence
from domain.ledger.registry import handles
from domain.ledger.unit_of_work import UnitOfWork
from domain.subscription.billing import CREDIT, issue_credit_note, record_refund

if TYPE_CHECKING:
    from domain.ledger.service import Ledger


@handles(c.GrantCredit)
def grant_credit(ledger: Ledger, cmd: c.GrantCredit, uow: UnitOfWork) -> dict[str, Any]:
    """Credit by hand (a goodwill gesture, a correction); an erased customer gets none."""
    customer = ledger.load_customer(uow, cmd.customer_id)
    customer.check_not_erased()
    customer.check_exists_at(cmd.at, f"customer '{cmd.customer_id}'")
    customer.check_grant(cmd.currency, cmd.amount)
    customer.grant_credit(
        currency=cmd.currency,
        amount=cmd.amount,
        reason=cmd.reason,
        source="grant",
        reference="",
        at=cmd.at,
        meta=cmd.meta(),
    )
    return {
        "customer_id": cmd.customer_id,
        "currency": cmd.currency,
        "credit_balance": customer.credit_in(cmd.currency),
    }


@handles(c.RefundInvoice)
def refund_invoice(ledger: Ledger, cmd: c.RefundInvoice, uow: UnitOfWork) -> dict[str, Any]:
    """A credit note for money paid on an invoice: refunded at the gateway after commit (the
    payments worker), or, paid outside the gateway, to the customer's credit right away."""
    sub = ledger.load_subscription(uow, cmd.subscription_id, cmd)
    customer = ledger.load_customer(uow, sub.customer_id)
    meta = cmd.meta()
    number = credit_note_sequence(uow, cmd.at, meta).take(cmd.at, meta)
    note = issue_credit_note(
        sub,
        number=number,
        invoice=cmd.invoice_number,
        amount=cmd.amount,
        reason=cmd.reason,
        at=cmd.at,
        meta=meta,
    )
    if note.method == CREDIT:
        customer.grant_credit(
            currency=sub.currency,
            amount=note.amount,
            reason=f"credit note {number} for invoice {cmd.invoice_number}",
            source="credit_note",
            reference=number,
            at=cmd.at,
            meta=meta,
        )
    return {
        "subscription_id": cmd.subscription_id,
        "invoice": cmd.invoice_number,
        "credit_note": number,
        "currency": sub.currency,
        "amount": note.amount,
        "refund": "pending" if note.method != CREDIT else "to_credit",
    }


@handles(c.RecordRefundOutcome)
def record_refund_outcome(
    ledger: Ledger, cmd: c.RecordRefundOutcome, uow: UnitOfWork
) -> dict[str, Any]:
    """Refunded, or refused by the gateway: then the credit note stands and its amount is the
    customer's credit (spent on their next invoices), since the money is still owed to them."""
    sub = ledger.load_subscription(uow, cmd.subscription_id, cmd)
    meta = cmd.meta()
    recorded = record_refund(
        sub,
        credit_note=cmd.credit_note,
        succeeded=cmd.succeeded,
        reference=cmd.reference,
        failure_code=cmd.failure_code,
        failure_message=cmd.failure_message,
        at=cmd.at,
        meta=meta,
    )
    note = sub.credit_notes[cmd.credit_note]
    if recorded and not cmd.succeeded:
        ledger.load_customer(uow, sub.customer_id).grant_credit(
            currency=sub.currency,
            amount=note.amount,
            reason=f"refund of credit note {cmd.credit_note} failed",
            source="refund_failed",
            reference=cmd.credit_note,
            at=cmd.at,
            meta=meta,
        )
    return {
        "subscription_id": cmd.subscription_id,
        "credit_note": cmd.credit_note,
        "refund": note.status,
        "recorded": recorded,
    }
