"""Refunds are credit notes (CN-000001, gapless) against paid invoices, never more than was
paid; the ledger records the RefundRequested and the gateway's answer comes back as a
command (the domain side, with the in-process payments worker switched off)."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from ledger_support import Book, T, flat

from domain import commands as c
from domain.customer import Customer
from domain.errors import InvalidAmount, InvalidTransition, LedgerError
from domain.identity import CREDIT_NOTE_SEQUENCE_ID, customer_uuid
from projections import reports


@pytest.fixture
def quiet(book: Book) -> Book:
    """A book whose charges and refunds wait for the outcomes the test feeds back."""
    book.ledger.after_commit = None
    t = T(2024, 1, 1)
    book.plan("basic", t, flat(1000), name="Basic")
    book.run(c.SetTaxRate, t, country="GB", rate_ppm=200_000)
    book.customer("cus", t)
    book.customer("brit", t, country="GB")
    return book


def pay(book: Book, subscription_id: str, number: str, at: Any) -> None:
    """The gateway's success for the invoice's pending charge, as the payments worker says it."""
    (request,) = [
        e for e in book.events_of(subscription_id, "ChargeRequested") if e.number == number
    ]
    book.run(
        c.RecordChargeOutcome,
        at,
        subscription_id=subscription_id,
        invoice_number=number,
        attempt=request.attempt,
        succeeded=True,
        reference=f"ch_{number}",
    )


def refund(book: Book, subscription_id: str, number: str, at: Any, **fields: Any) -> dict:
    return book.run(
        c.RefundInvoice, at, subscription_id=subscription_id, invoice_number=number, **fields
    )


def notes(book: Book) -> list[tuple]:
    return [
        (n["number"], n["invoice_number"], n["amount"], n["method"], n["refund_status"])
        for n in reports.credit_notes(book.db)
    ]


def test_a_full_refund_is_credit_note_1_and_asks_the_gateway_with_the_notes_key(
    quiet: Book,
) -> None:
    quiet.subscribe("sub", "cus", "basic", T(2024, 1, 1))
    pay(quiet, "sub", "INV-000001", T(2024, 1, 1))

    outcome = refund(quiet, "sub", "INV-000001", T(2024, 1, 5), reason="duplicate")

    assert (outcome["credit_note"], outcome["amount"], outcome["refund"]) == (
        "CN-000001",
        1000,
        "pending",
    )
    (note,) = quiet.events_of("sub", "CreditNoteIssued")
    assert (note.number, note.invoice, note.amount, note.reason, note.method) == (
        "CN-000001",
        "INV-000001",
        1000,
        "duplicate",
        "refund",
    )
    assert [(ln["kind"], ln["description"], ln["amount"]) for ln in note.lines] == [
        ("credit", "Refund of INV-000001", 1000)
    ]
    (asked,) = quiet.events_of("sub", "RefundRequested")
    assert (
        asked.currency,
        asked.credit_note,
        asked.invoice_number,
        asked.charge_reference,
        asked.amount,
        asked.idempotency_key,
    ) == ("USD", "CN-000001", "INV-000001", "ch_INV-000001", 1000, "CN-000001:refund")
    assert notes(quiet) == [("CN-000001", "INV-000001", 1000, "refund", "pending")]
    (row,) = quiet.db.query("SELECT * FROM refunds")
    assert (row["status"], row["idempotency_key"], row["charge_reference"]) == (
        "pending",
        "CN-000001:refund",
        "ch_INV-000001",
    )

    done = quiet.run(
        c.RecordRefundOutcome,
        T(2024, 1, 5, 1),
        subscription_id="sub",
        credit_note="CN-000001",
        succeeded=True,
        reference="re_123",
    )
    assert (done["refund"], done["recorded"]) == ("succeeded", True)
    (refunded,) = quiet.events_of("sub", "RefundSucceeded")
    assert (refunded.credit_note, refunded.amount, refunded.reference) == (
        "CN-000001",
        1000,
        "re_123",
    )
    (row,) = reports.credit_notes(quiet.db)
    assert (row["refund_status"], row["refund_reference"], row["customer_id"]) == (
        "succeeded",
        "re_123",
        "cus",
    )
    # the same answer again (a redelivery with another command id) records nothing more
    again = quiet.run(
        c.RecordRefundOutcome,
        T(2024, 1, 5, 2),
        subscription_id="sub",
        credit_note="CN-000001",
        succeeded=False,
        failure_code="late",
    )
    assert (again["refund"], again["recorded"]) == ("succeeded", False)
    assert quiet.event_types("sub")[-2:] == ["RefundRequested", "RefundSucceeded"]
    with pytest.raises(InvalidTransition, match="refunded in full"):
        refund(quiet, "sub", "INV-000001", T(2024, 1, 6))


def test_partial_refunds_split_the_tax_and_never_pass_what_was_paid(quiet: Book) -> None:
    quiet.subscribe("uk", "brit", "basic", T(2024, 1, 1))
    assert quiet.invoice("INV-000001")["total"] == 1200  # 1000 + 20% tax
    pay(quiet, "uk", "INV-000001", T(2024, 1, 1))

    refund(quiet, "uk", "INV-000001", T(2024, 1, 2), amount=500)
    head = quiet.head()
    with pytest.raises(InvalidAmount, match="700 minor units of USD left"):
        refund(quiet, "uk", "INV-000001", T(2024, 1, 3), amount=701)
    assert quiet.head() == head  # refused: nothing recorded, no number taken
    rest = refund(quiet, "uk", "INV-000001", T(2024, 1, 3))

    assert rest["amount"] == 700 and rest["credit_note"] == "CN-000002"
    first, second = reports.credit_notes(quiet.db)
    # tax share = amount x 200 / 1200: 83.33 -> 83 of 500, 116.67 -> 117 of 700; 83 + 117 = 200
    assert [(ln["kind"], ln["amount"]) for ln in first["lines"]] == [("credit", 417), ("tax", 83)]
    assert [(ln["kind"], ln["amount"]) for ln in second["lines"]] == [("credit", 583), ("tax", 117)]
    assert first["lines"][1]["description"] == "Tax refunded (INV-000001)"
    with pytest.raises(InvalidTransition, match="refunded in full"):
        refund(quiet, "uk", "INV-000001", T(2024, 1, 4), amount=1)


def test_credit_notes_are_numbered_without_gaps_across_subscriptions(quiet: Book) -> None:
    quiet.subscribe("a", "cus", "basic", T(2024, 1, 1))
    quiet.subscribe("b", "brit", "basic", T(2024, 1, 1))
    pay(quiet, "a", "INV-000001", T(2024, 1, 1))
    pay(quiet, "b", "INV-000002", T(2024, 1, 1))
    refund(quiet, "a", "INV-000001", T(2024, 1, 2), amount=100)
    with pytest.raises(LedgerError):  # INV-000001 is a's, not b's
        refund(quiet, "b", "INV-000001", T(2024, 1, 3))
    refund(quiet, "b", "INV-000002", T(2024, 1, 3), amount=100)
    refund(quiet, "a", "INV-000001", T(2024, 1, 4), amount=100)

    assert [n[0] for n in notes(quiet)] == ["CN-000001", "CN-000002", "CN-000003"]
    allocated = [
        (type(e).__name__, getattr(e, "first", None), getattr(e, "last", None))
        for e in quiet.ledger.history(CREDIT_NOTE_SEQUENCE_ID)
    ]
    assert allocated == [
        ("Started", None, None),
        ("NumbersAllocated", 1, 1),
        ("NumbersAllocated", 2, 2),
        ("NumbersAllocated", 3, 3),
    ]


def test_a_refused_refund_leaves_the_note_and_its_amount_as_the_customers_credit(
    quiet: Book,
) -> None:
    quiet.subscribe("sub", "cus", "basic", T(2024, 1, 1))
    pay(quiet, "sub", "INV-000001", T(2024, 1, 1))
    refund(quiet, "sub", "INV-000001", T(2024, 1, 10))
    quiet.run(
        c.RecordRefundOutcome,
        T(2024, 1, 10, 1),
        subscription_id="sub",
        credit_note="CN-000001",
        succeeded=False,
        failure_code="charge_disputed",
        failure_message="The charge is disputed.",
    )
    (failed,) = quiet.events_of("sub", "RefundFailed")
    assert (failed.credit_note, failed.amount, failed.failure_code, failed.failure_message) == (
        "CN-000001",
        1000,
        "charge_disputed",
        "The charge is disputed.",
    )
    assert notes(quiet) == [("CN-000001", "INV-000001", 1000, "refund", "failed")]
    customer = quiet.ledger.get(Customer, customer_uuid("cus"))
    assert customer is not None and customer.credit == {"USD": 1000}
    (granted,) = [
        e for e in quiet.ledger.history(customer_uuid("cus")) if type(e).__name__ == "CreditGranted"
    ]
    assert (granted.source, granted.reference, granted.amount) == (
        "refund_failed",
        "CN-000001",
        1000,
    )
    quiet.advance(T(2024, 2, 1))  # the renewal spends it
    renewal = quiet.invoice("INV-000002")
    assert (renewal["credit_applied"], renewal["amount_due"]) == (1000, 0)


def test_an_invoice_paid_outside_the_gateway_is_credited_to_the_customer(quiet: Book) -> None:
    quiet.subscribe("sub", "cus", "basic", T(2024, 1, 1))
    quiet.run(  # the card was declined; the customer paid by bank transfer instead
        c.RecordChargeOutcome,
        T(2024, 1, 1, 1),
        subscription_id="sub",
        invoice_number="INV-000001",
        attempt=1,
        succeeded=False,
        reference="ch_failed",
        decline_code="card_declined",
    )
    quiet.run(
        c.RecordPayment,
        T(2024, 1, 2),
        subscription_id="sub",
        invoice_number="INV-000001",
        amount=1000,
        reference="bank-42",
    )
    outcome = refund(quiet, "sub", "INV-000001", T(2024, 1, 3), amount=400)
    assert (outcome["refund"], outcome["amount"]) == ("to_credit", 400)
    assert quiet.events_of("sub", "RefundRequested") == []
    (note,) = quiet.events_of("sub", "CreditNoteIssued")
    assert (note.method, note.lines[0]["description"]) == (
        "credit",
        "Credit to balance for INV-000001",
    )
    assert notes(quiet) == [("CN-000001", "INV-000001", 400, "credit", "none")]
    assert reports.balance(quiet.db, "cus")["USD"]["credit"] == 400
    with pytest.raises(InvalidTransition, match="went to the customer's credit"):
        quiet.run(
            c.RecordRefundOutcome,
            T(2024, 1, 4),
            subscription_id="sub",
            credit_note="CN-000001",
            succeeded=True,
        )


def test_what_was_not_paid_cannot_be_refunded(quiet: Book) -> None:
    quiet.subscribe("sub", "cus", "basic", T(2024, 1, 1))  # its charge is still pending
    head = quiet.head()
    with pytest.raises(InvalidTransition, match="not paid"):
        refund(quiet, "sub", "INV-000001", T(2024, 1, 2))
    with pytest.raises(InvalidTransition, match="no invoice INV-000099"):
        refund(quiet, "sub", "INV-000099", T(2024, 1, 2))
    with pytest.raises(InvalidTransition, match="no credit note CN-000001"):
        quiet.run(
            c.RecordRefundOutcome,
            T(2024, 1, 2),
            subscription_id="sub",
            credit_note="CN-000001",
            succeeded=True,
        )
    assert quiet.head() == head
    # an invoice the customer's credit paid in full had no money due: nothing to refund
    quiet.run(
        c.GrantCredit, T(2024, 1, 3), customer_id="cus", currency="USD", amount=5000, reason="x"
    )
    quiet.subscribe("free", "cus", "basic", T(2024, 1, 4))
    assert quiet.invoice("INV-000002")["amount_due"] == 0
    with pytest.raises(InvalidTransition, match="no invoice INV-000002 with an amount due"):
        refund(quiet, "free", "INV-000002", T(2024, 1, 5))


def test_the_payments_worker_refunds_at_the_gateway_after_commit(book: Book) -> None:
    """With the in-process payments worker (embedded): the charge and the refund are made at
    the sandbox gateway after their commits, and their outcomes come back as commands."""
    book.plan("basic", T(2024, 1, 1), flat(1000))
    book.customer("cus", T(2024, 1, 1))
    book.subscribe("sub", "cus", "basic", T(2024, 1, 1))
    assert book.invoice("INV-000001")["status"] == "paid"

    book.run(c.RefundInvoice, T(2024, 1, 2), subscription_id="sub", invoice_number="INV-000001")

    (refunded,) = book.events_of("sub", "RefundSucceeded")
    assert (refunded.credit_note, refunded.amount) == ("CN-000001", 1000)
    (row,) = reports.credit_notes(book.db)
    assert (row["refund_status"], row["refund_reference"]) == ("succeeded", refunded.reference)
    gateway = sqlite3.connect(book.config.data_dir / "gateway.sqlite")
    try:
        calls = gateway.execute(
            "SELECT idempotency_key, amount, succeeded, calls FROM refunds"
        ).fetchall()
    finally:
        gateway.close()
    assert calls == [("CN-000001:refund", 1000, 1, 1)]  # one refund, asked once
