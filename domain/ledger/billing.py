"""Billing and collection: invoice a subscription, number the invoice, charge the gateway.

Functions of the Ledger and the unit of work they run in; the gateway is called inside the
transaction with an idempotency key derived from the invoice and the attempt, so a redone
transaction asks the gateway the same question and gets the same answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from domain.books.invoice_sequence import InvoiceSequence
from domain.catalog.plan import Plan
from domain.catalog.tax_rate import TaxRate
from domain.identity import INVOICE_SEQUENCE_ID, tax_rate_uuid
from domain.invoicing import Line
from domain.ledger.unit_of_work import UnitOfWork
from domain.ports import ChargeResult
from domain.subscription import Status, Subscription
from domain.subscription.billing import issue_invoice, recurring_lines
from domain.subscription.payments import record_charge

if TYPE_CHECKING:
    from domain.ledger.service import Ledger


def bill(
    ledger: Ledger,
    uow: UnitOfWork,
    sub: Subscription,
    plan: Plan,
    reason: str,
    at: datetime,
    meta: dict,
    counts: dict[str, int] | None = None,
) -> list[str]:
    """Invoice the subscription's current period; the invoice numbers issued."""
    lines = recurring_lines(sub, plan.name)
    return invoice(ledger, uow, sub, lines, reason, at, meta, counts)


def invoice(
    ledger: Ledger,
    uow: UnitOfWork,
    sub: Subscription,
    lines: list[Line],
    reason: str,
    at: datetime,
    meta: dict,
    counts: dict[str, int] | None = None,
) -> list[str]:
    """Issue an invoice of `lines` (taxed at the customer's country's rate) and collect it."""
    if not lines:
        return []
    customer = ledger.load_customer(uow, sub.customer_id)
    tax = uow.find(TaxRate, tax_rate_uuid(customer.country))
    number = sequence(uow, at, meta).take(at)
    issued = issue_invoice(
        sub,
        number=number,
        reason=reason,
        lines=lines,
        tax_rate_ppm=tax.rate_ppm if tax else 0,
        country=customer.country,
        at=at,
        meta=meta,
    )
    if counts is not None:
        counts["invoices"] += 1
    if issued.amount_due > 0:
        collect(ledger, uow, sub, number, at, meta, counts)
    return [number]


def collect(
    ledger: Ledger,
    uow: UnitOfWork,
    sub: Subscription,
    number: str,
    at: datetime,
    meta: dict,
    counts: dict[str, int] | None = None,
) -> None:
    """Charge the gateway for an open invoice; the idempotency key is invoice + attempt."""
    customer = ledger.load_customer(uow, sub.customer_id)
    open_invoice = sub.check_open_invoice(number)
    attempt = open_invoice.next_attempt
    personal = None if customer.erased else ledger.personal(uow, customer)
    token = personal.get("payment_token") if personal else None
    if customer.erased:
        result = ChargeResult(False, "", "customer_erased")
    elif not token:
        result = ChargeResult(False, "", "no_payment_method")
    else:
        result = ledger.gateway.charge(
            token=str(token),
            amount=open_invoice.amount_due,
            currency=sub.currency,
            idempotency_key=f"{sub.id}:{number}:{attempt}",
        )
    first_failed = open_invoice.first_failed_at or at
    next_retry = (
        None
        if result.succeeded or customer.erased
        else ledger.settings.dunning.next_retry_at(first_failed, attempt)
    )
    before = sub.status
    record_charge(
        sub,
        number=number,
        result=result,
        attempt=attempt,
        next_retry_at=next_retry,
        at=at,
        meta=meta,
    )
    if counts is not None and not result.succeeded:
        counts["payments_failed"] += 1
        if before != Status.CANCELED and sub.status == Status.CANCELED:
            counts["churned"] += 1


def sequence(uow: UnitOfWork, at: datetime, meta: dict) -> InvoiceSequence:
    """The invoice sequence, started by the first invoice ever issued."""
    if not uow.sequence_meta:  # the allocation is recorded as the first taker's
        uow.sequence_meta = dict(meta)
    seq = uow.find(InvoiceSequence, INVOICE_SEQUENCE_ID)
    if seq is None:
        seq = uow.start(InvoiceSequence.start(id=INVOICE_SEQUENCE_ID, at=at, meta=meta))
    return seq
