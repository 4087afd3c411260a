"""Billing and collection: invoice a subscription, number the invoice, ask for its charge.

Functions of the Ledger and the unit of work they run in. The gateway is never called
inside a transaction: `collect` records a ChargeRequested (its idempotency key made of the
invoice number and the attempt) and a payments worker charges once it is committed, so a
transaction redone after a conflict never reaches the gateway at all.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from eventsourcing.utils import get_topic

from domain.books.credit_note_sequence import CreditNoteSequence
from domain.books.invoice_sequence import InvoiceSequence
from domain.catalog.plan import Plan
from domain.catalog.tax_rate import TaxRate
from domain.customer import Customer
from domain.identity import CREDIT_NOTE_SEQUENCE_ID, INVOICE_SEQUENCE_ID, tax_rate_uuid
from domain.invoicing import Line
from domain.ledger.unit_of_work import UnitOfWork
from domain.subscription import Status, Subscription
from domain.subscription.billing import issue_invoice, move_credit, recurring_lines
from domain.subscription.payments import record_failure, request_charge
from domain.topics import REGISTERED

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
    """Issue an invoice of `lines` (taxed at the customer's country's rate, less the
    customer's credit in its currency, in this transaction) and collect it."""
    if not lines:
        return []
    customer = ledger.load_customer(uow, sub.customer_id)
    move_stranded_credit(ledger, uow, at, meta)  # credit: the customer's balance is whole
    tax = uow.find(TaxRate, tax_rate_uuid(customer.country))
    number = sequence(uow, at, meta).take(at)
    issued = issue_invoice(
        sub,
        number=number,
        reason=reason,
        lines=lines,
        tax_rate_ppm=tax.rate_ppm if tax else 0,
        country=customer.country,
        credit_balance=customer.credit_in(sub.currency),
        at=at,
        meta=meta,
    )
    move_invoice_credit(customer, issued, at, meta)
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
    """Ask for a charge of an open invoice (ChargeRequested); the gateway is called after commit.

    Without a payment method (or a customer) there is nothing to ask the gateway: that
    attempt fails here, and dunning goes on as for a decline.
    """
    customer = ledger.load_customer(uow, sub.customer_id)
    open_invoice = sub.check_open_invoice(number)
    if open_invoice.charging is not None:
        return  # its pending charge's outcome decides what comes next
    personal = None if customer.erased else ledger.personal(uow, customer)
    if personal is not None and personal.get("payment_token"):
        request_charge(sub, number, at, meta)
        if counts is not None:
            counts["charges"] += 1
        return
    code, message = (
        ("customer_erased", "the customer was erased")
        if customer.erased
        else ("no_payment_method", "the customer has no payment method")
    )
    attempt = open_invoice.next_attempt
    first_failed = open_invoice.first_failed_at or at
    next_retry = (
        None if customer.erased else ledger.settings.dunning.next_retry_at(first_failed, attempt)
    )
    before = sub.status
    record_failure(
        sub, number=number, code=code, message=message, next_retry_at=next_retry, at=at, meta=meta
    )
    if counts is not None:
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


# ---- credit: the customer's balance, credit notes, credit moved from old books ----


def move_invoice_credit(customer: Customer, issued: Any, at: datetime, meta: dict) -> None:
    """The customer's balance follows the invoice: spent on it, or banked from a net credit."""
    if issued.credit_applied > 0:
        customer.apply_credit(
            currency=issued.currency,
            amount=issued.credit_applied,
            invoice=issued.number,
            at=at,
            meta=meta,
        )
    if issued.total < 0:  # a downgrade: the unused time is worth more than the rest
        customer.grant_credit(
            currency=issued.currency,
            amount=-issued.total,
            reason=f"net credit of invoice {issued.number}",
            source="proration",
            reference=issued.number,
            at=at,
            meta=meta,
        )


def credit_note_sequence(uow: UnitOfWork, at: datetime, meta: dict) -> CreditNoteSequence:
    """The credit book, started by the first credit note (or by moving old books' credit)."""
    seq = uow.find(CreditNoteSequence, CREDIT_NOTE_SEQUENCE_ID)
    if seq is None:
        seq = uow.start(CreditNoteSequence.start(id=CREDIT_NOTE_SEQUENCE_ID, at=at, meta=meta))
    return seq


# ledgers whose book holds no credit on subscriptions (any more): nothing to look for
_NOTHING_STRANDED: weakref.WeakSet[Ledger] = weakref.WeakSet()
PAGE = 1000


def move_stranded_credit(ledger: Ledger, uow: UnitOfWork, at: datetime, meta: dict) -> None:
    """Move the credit books written before 0.3 kept on subscriptions to their customers.

    Runs before any invoice spends credit, so the first invoice after an upgrade finds every
    subscription holding credit, touched again or not (a churned one too): it reads every
    Invoiced event of the old version from the store, moves what each subscription still
    holds (Subscription.CreditMovedToCustomer + Customer.CreditGranted, source migration)
    and records that it did (CreditNoteSequence.StrandedCreditMoved), all in the invoice's
    transaction. A book started by this version has nothing to move: its first invoice says
    so, and this process never looks again.
    """
    if ledger in _NOTHING_STRANDED:
        return
    seq = uow.find(CreditNoteSequence, CREDIT_NOTE_SEQUENCE_ID)
    if seq is not None and seq.credit_moved:
        if not seq.pending_events:  # committed, not only done in this unit of work
            _NOTHING_STRANDED.add(ledger)
        return
    first = next(_old_invoices(ledger, limit=1), None)
    if first is None or first.customer_credit:  # no invoice yet, or written by this version
        _NOTHING_STRANDED.add(ledger)
        return
    holders = {
        e.originator_id
        for e in _old_invoices(ledger)
        if not e.customer_credit and e.credit_balance_after > 0
    }
    moved, total = [], 0
    for sub_id in sorted(holders, key=str):
        sub = uow.find(Subscription, sub_id)
        amount = move_credit(sub, at, meta) if sub is not None else 0
        if not amount:
            continue
        assert sub is not None
        ledger.load_customer(uow, sub.customer_id).grant_credit(
            currency=sub.currency,
            amount=amount,
            reason=f"credit held on subscription {sub.subscription_id}",
            source="migration",
            reference=sub.subscription_id,
            at=at,
            meta=meta,
        )
        moved.append(sub.subscription_id)
        total += amount
    credit_note_sequence(uow, at, meta).record_credit_moved(moved, total, at, meta)


def _old_invoices(ledger: Ledger, limit: int | None = None) -> Iterator[Any]:
    """Invoiced events in store order, upcast; stops at the first written by this version."""
    cls = Subscription.Invoiced
    topics = [get_topic(cls), *(t for t, c in REGISTERED.items() if c is cls)]
    start, seen = 1, 0
    while limit is None or seen < limit:
        page = ledger.recorder.select_notifications(start, PAGE, topics=topics)
        for notification in page:
            event: Any = ledger.mapper.to_domain_event(notification)
            yield event
            seen += 1
            if event.customer_credit or (limit is not None and seen >= limit):
                return
        if len(page) < PAGE:
            return
        start = page[-1].id + 1
