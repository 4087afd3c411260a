"""Credit an earlier version kept on subscriptions moves to their customers, every bit of
it, touched again or not, in the first transaction that issues an invoice after the upgrade.

tests/fixtures/book-0.1 (written by 0.1) holds one subscription with credit (sub_000003,
USD 288.36); book-0.2 holds none. `strand_credit` writes what 0.2 wrote for a downgrade's
net credit, so a fresh book can hold stranded credit on a subscription that then churns.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from ledger_support import Book, T, flat

from bootstrap import Config
from domain import commands as c
from domain.books.credit_note_sequence import CreditNoteSequence
from domain.customer import Customer
from domain.identity import CREDIT_NOTE_SEQUENCE_ID, customer_uuid, subscription_uuid
from domain.subscription import Subscription
from projections import reports
from schemas.records import EventRecord

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def old_book(tmp_path: Path, name: str) -> Path:
    data_dir = tmp_path / name
    data_dir.mkdir()
    for file in ("events.sqlite", "keys.sqlite"):
        with gzip.open(FIXTURES / name / f"{file}.gz") as src, open(data_dir / file, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return data_dir


def named(book: Book, aggregate_id: Any, name: str) -> list[Any]:
    return [e for e in book.ledger.history(aggregate_id) if type(e).__name__ == name]


def strand_credit(book: Book, subscription_id: str, amount: int, at: datetime) -> None:
    """Record what 0.2 recorded for a net credit: an Invoiced whose credit is the
    subscription's own (an upcast v1 event reads exactly so)."""
    sub = book.ledger.repository.get(subscription_uuid(subscription_id))
    sub.emit(
        sub.Invoiced,
        at,
        {"command": "ChangePlan", "actor": "0.2"},
        currency=sub.currency,
        number="INV-000000",
        reason="proration",
        lines=[],
        subtotal=-amount,
        tax=0,
        total=-amount,
        credit_applied=0,
        amount_due=0,
        credit_balance_after=amount,
        period_start=at,
        period_end=sub.period_end,
        discounted=False,
        coupon_periods_left=None,
        customer_credit=False,
        status=sub.status,
        mrr=sub.mrr,
    )
    book.ledger.save(sub)
    book.rt.catch_up()


def test_a_0_1_book_moves_every_subscriptions_credit_with_its_first_invoice(
    tmp_path: Path,
) -> None:
    book = Book(Config(data_dir=old_book(tmp_path, "book-0.1")), id_prefix="mig")
    try:
        clock = book.ledger.clock_now()
        assert clock == T(2025, 5, 1)
        holder = subscription_uuid("sub_000003")
        before = book.ledger.get(Subscription, holder)
        assert before is not None and before.credit_balance == 28836
        assert reports.balance(book.db, "cus_000003")["USD"]["credit"] == 28836  # its column
        version = before.version

        # someone else's invoice: sub_000003 itself is not touched, its credit still moves
        book.customer("newcomer", clock)
        book.subscribe("new_sub", "newcomer", "team", clock)

        (moved,) = named(book, holder, "CreditMovedToCustomer")
        assert (moved.currency, moved.amount, moved.originator_version) == (
            "USD",
            28836,
            version + 1,
        )
        (granted,) = named(book, customer_uuid("cus_000003"), "CreditGranted")
        assert (granted.amount, granted.source, granted.reference, granted.balance_after) == (
            28836,
            "migration",
            "sub_000003",
            28836,
        )
        (marker,) = named(book, CREDIT_NOTE_SEQUENCE_ID, "StrandedCreditMoved")
        assert (marker.subscriptions, marker.amount) == (["sub_000003"], 28836)
        assert book.subscription("sub_000003")["credit_balance"] == 0
        assert reports.balance(book.db, "cus_000003")["USD"]["credit"] == 28836  # the customer's

        book.advance(T(2025, 5, 14))  # sub_000003 renews on 2025-05-13 on pro (USD 49.00)
        renewal = book.invoices("sub_000003")[-1]
        assert (renewal["issued_at"], renewal["total"]) == ("2025-05-13T00:00:00Z", 4900)
        assert (renewal["credit_applied"], renewal["amount_due"]) == (4900, 0)
        customer = book.ledger.get(Customer, customer_uuid("cus_000003"))
        assert customer is not None and customer.credit == {"USD": 28836 - 4900}
    finally:
        book.close()

    again = Book(Config(data_dir=tmp_path / "book-0.1"), id_prefix="again")
    try:  # another process on the same book: nothing moves twice
        again.advance(T(2025, 7, 1))
        assert len(named(again, holder, "CreditMovedToCustomer")) == 1
        assert len(named(again, CREDIT_NOTE_SEQUENCE_ID, "StrandedCreditMoved")) == 1
    finally:
        again.close()


def test_a_0_2_book_without_credit_records_that_nothing_was_held(tmp_path: Path) -> None:
    book = Book(Config(data_dir=old_book(tmp_path, "book-0.2")), id_prefix="mig")
    try:
        book.advance(T(2026, 2, 1))
        (marker,) = named(book, CREDIT_NOTE_SEQUENCE_ID, "StrandedCreditMoved")
        assert (marker.subscriptions, marker.amount) == ([], 0)
        assert [r for r in book.records() if r.name == "Customer.CreditGranted"] == []
    finally:
        book.close()


def test_credit_stranded_on_a_churned_subscription_pays_the_customers_next_invoice(
    book: Book,
) -> None:
    t = T(2024, 1, 1)
    book.plan("trial", t, flat(1000), trial_days=14)
    book.plan("basic", t, flat(1000))
    book.customer("cus", t)
    book.subscribe("old", "cus", "trial", t)
    strand_credit(book, "old", 700, T(2024, 1, 2))
    book.run(c.Cancel, T(2024, 1, 3), subscription_id="old", immediately=True)
    assert book.subscription("old")["status"] == "canceled"
    assert reports.balance(book.db, "cus")["USD"]["credit"] == 700  # still on the subscription

    book.subscribe("new", "cus", "basic", T(2024, 1, 4))

    first = book.invoices("new")[0]
    assert (first["total"], first["credit_applied"], first["amount_due"]) == (1000, 700, 300)
    assert book.event_types("old")[-1] == "CreditMovedToCustomer"
    assert book.subscription("old")["credit_balance"] == 0
    assert reports.balance(book.db, "cus")["USD"]["credit"] == 0
    assert [
        (m["kind"], m["amount"], m["source"], m["reference"])
        for m in reports.customer_credit(book.db, "cus")
    ] == [("granted", 700, "migration", "old"), ("applied", -700, "invoice", first["number"])]


def test_a_book_begun_by_this_version_never_looks_for_stranded_credit(book: Book) -> None:
    t = T(2024, 1, 1)
    book.plan("basic", t, flat(1000))
    book.customer("cus", t)
    book.subscribe("sub", "cus", "basic", t)
    book.advance(T(2024, 3, 1))
    assert book.ledger.get(CreditNoteSequence, CREDIT_NOTE_SEQUENCE_ID) is None
    assert {r.name for r in book.records()}.isdisjoint(
        {"Subscription.CreditMovedToCustomer", "CreditNoteSequence.StrandedCreditMoved"}
    )


def credit_scenario() -> list[EventRecord]:
    """Every credit event type, for the codec's round trips (tests/unit/test_codec.py): credit
    moved from an old book's churned subscription, a grant, refunds that succeed and fail."""
    with tempfile.TemporaryDirectory() as tmp:
        book = Book.embedded(Path(tmp) / "credit", id_prefix="credit")
        try:
            book.ledger.after_commit = None  # the refunds' outcomes are fed back below
            t = T(2024, 1, 1)
            book.plan("trial", t, flat(1000), trial_days=14)
            book.plan("basic", t, flat(1000))
            book.customer("cus", t)
            book.subscribe("old", "cus", "trial", t)
            strand_credit(book, "old", 700, T(2024, 1, 2))
            book.run(c.Cancel, T(2024, 1, 3), subscription_id="old", immediately=True)
            book.run(c.GrantCredit, t, customer_id="cus", currency="USD", amount=1, reason="x")
            book.subscribe("new", "cus", "basic", T(2024, 1, 4))
            (number,) = book.subscription("new")["open_invoices"]
            book.run(
                c.RecordChargeOutcome,
                T(2024, 1, 4),
                subscription_id="new",
                invoice_number=number,
                attempt=1,
                succeeded=True,
                reference="ch_1",
            )
            for n, ok in ((1, True), (2, False)):
                book.run(
                    c.RefundInvoice,
                    T(2024, 1, 5),
                    subscription_id="new",
                    invoice_number=number,
                    amount=100,
                )
                book.run(
                    c.RecordRefundOutcome,
                    T(2024, 1, 5),
                    subscription_id="new",
                    credit_note=f"CN-00000{n}",
                    succeeded=ok,
                    reference="re_1" if ok else "",
                    failure_code=None if ok else "charge_disputed",
                    failure_message=None if ok else "The charge is disputed.",
                )
            return book.records()
        finally:
            book.close()


def test_the_credit_scenario_emits_every_credit_event() -> None:
    names = {r.name for r in credit_scenario()}
    assert {
        "Customer.CreditGranted",
        "Customer.CreditApplied",
        "CreditNoteSequence.Started",
        "CreditNoteSequence.NumbersAllocated",
        "CreditNoteSequence.StrandedCreditMoved",
        "Subscription.CreditMovedToCustomer",
        "Subscription.CreditNoteIssued",
        "Subscription.RefundRequested",
        "Subscription.RefundSucceeded",
        "Subscription.RefundFailed",
    } <= names


@pytest.mark.parametrize("name", ["book-0.1", "book-0.2"])
def test_old_stores_still_load_every_subscription(tmp_path: Path, name: str) -> None:
    book = Book(Config(data_dir=old_book(tmp_path, name)), id_prefix="load")
    try:
        ids = {r.aggregate_id for r in book.records() if r.aggregate_type == "Subscription"}
        for aggregate_id in ids:
            sub = book.ledger.get(Subscription, UUID(aggregate_id))
            assert sub is not None and sub.credit_notes == {}
            assert all(paid.credited == 0 for paid in sub.refundable.values())
    finally:
        book.close()
