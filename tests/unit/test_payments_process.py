"""Payments as a process: the charge is asked for in the command's transaction and made after
commit by the in-process payments worker; its outcome comes back as a command."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from ledger_support import Book, T

from domain import commands as c
from domain.errors import IdempotencyConflict, InvalidTransition
from domain.identity import subscription_uuid
from domain.ports import ChargeResult, GatewayUnavailable, PaymentGateway
from domain.subscription import Subscription
from domain.subscription.status import OpenInvoice, PendingCharge

T0 = T(2024, 1, 10, 8, 30)


class Watching:
    """The real sandbox, noting each charge's key and whether its request was committed."""

    def __init__(self, inner: PaymentGateway, book: Book) -> None:
        self.inner, self.book = inner, book
        self.keys: list[str] = []
        self.committed_before_call: list[bool] = []
        self.down = 0  # answer GatewayUnavailable this many more times

    def charge(self, **request: Any) -> ChargeResult:
        key = request["idempotency_key"]
        self.keys.append(key)
        stored = [r.data.get("idempotency_key") for r in self.book.records()]
        self.committed_before_call.append(key in stored)
        if self.down:
            self.down -= 1
            raise GatewayUnavailable("timed out")
        return self.inner.charge(**request)

    def refund(self, **request: Any) -> Any:
        return self.inner.refund(**request)


@pytest.fixture
def book(tmp_path: Path) -> Any:
    b = Book.embedded(tmp_path / "book")
    b.plan("basic", T(2024, 1, 1))
    b.customer("ada", T(2024, 1, 1))
    b.customer("declined", T(2024, 1, 1), token="tok_chargeDeclined")
    b.ledger.gateway = Watching(b.ledger.gateway, b)
    yield b
    b.close()


def charging(book: Book, number: str = "INV-000001") -> int | None:
    (row,) = book.db.query("SELECT charging FROM invoices WHERE number = ?", (number,))
    return row["charging"]


def sub_of(book: Book, subscription_id: str) -> Subscription:
    sub = book.ledger.get(Subscription, subscription_uuid(subscription_id))
    assert sub is not None
    return sub


def test_the_charge_is_asked_for_in_the_commands_transaction_and_made_after_its_commit(
    book: Book,
) -> None:
    book.subscribe("sub", "ada", "basic", T0, command_id="signup")

    (requested,) = book.events_of("sub", "ChargeRequested")
    assert (requested.number, requested.attempt, requested.amount, requested.currency) == (
        "INV-000001",
        1,
        1000,
        "USD",
    )
    assert requested.idempotency_key == "INV-000001:1"
    assert requested.meta["command_id"] == "signup"  # recorded by the Subscribe itself
    assert book.ledger.gateway.keys == ["INV-000001:1"]
    assert book.ledger.gateway.committed_before_call == [True]
    (paid,) = book.events_of("sub", "PaymentSucceeded")
    assert (paid.number, paid.attempt, paid.amount, paid.timestamp) == ("INV-000001", 1, 1000, T0)
    assert paid.meta["command"] == "RecordChargeOutcome"
    assert paid.meta["command_id"] == "charge:INV-000001:1"
    assert paid.meta["correlation_id"] == "signup"
    assert book.invoice("INV-000001")["status"] == "paid"


def test_a_declined_card_is_failed_per_attempt_with_stripes_code_and_message_then_churns(
    book: Book,
) -> None:
    book.subscribe("sub", "declined", "basic", T0)
    book.advance(T(2024, 3, 1))

    failures = book.events_of("sub", "PaymentFailed")
    assert [(e.attempt, e.reason, e.message) for e in failures] == [
        (n, "card_declined", "Your card was declined.") for n in range(1, 6)
    ]
    assert book.ledger.gateway.keys == [f"INV-000001:{n}" for n in range(1, 6)]
    assert all(book.ledger.gateway.committed_before_call)
    assert book.events_of("sub", "Churned")[0].reason == "payment_failed:card_declined"
    assert [i["number"] for i in book.invoices("sub")] == ["INV-000001"]  # none after churn
    rows = book.db.query("SELECT attempt, outcome, reason, message FROM payments ORDER BY attempt")
    assert rows == [
        {"attempt": n, "outcome": "failed", "reason": "card_declined",
         "message": "Your card was declined."}
        for n in range(1, 6)
    ]  # fmt: skip


def test_an_unavailable_gateway_is_never_a_failure_and_is_asked_again_with_the_same_key(
    book: Book,
) -> None:
    book.ledger.gateway.down = 2
    book.subscribe("sub", "ada", "basic", T0)
    sub = sub_of(book, "sub")
    assert sub.open_invoices["INV-000001"].charging == 1  # pending: no retry is due
    assert sub.open_invoices["INV-000001"].next_retry_at is None
    assert charging(book) == 1

    book.run(c.UpdateCustomer, T0, customer_id="ada", email="ada@new.example")  # any commit
    assert book.events_of("sub", "PaymentSucceeded") == []  # still down
    book.run(c.UpdateCustomer, T0, customer_id="ada", email="ada@newer.example")

    assert book.ledger.gateway.keys == ["INV-000001:1"] * 3
    assert book.events_of("sub", "PaymentFailed") == []
    (paid,) = book.events_of("sub", "PaymentSucceeded")
    assert (paid.attempt, paid.amount) == (1, 1000)
    assert charging(book) is None


def test_a_conflict_redoes_the_transaction_without_ever_reaching_the_gateway(
    tmp_path: Path,
) -> None:
    data = tmp_path / "shared"
    first, second = Book.embedded(data, "one"), Book.embedded(data, "two")
    try:
        first.plan("basic", T(2024, 1, 1))
        first.customer("ada", T(2024, 1, 1))
        first.customer("bob", T(2024, 1, 1))
        calls: list[str] = []
        for book in (first, second):
            inner = book.ledger.gateway

            def charge(inner: Any = inner, **request: Any) -> ChargeResult:
                calls.append(request["idempotency_key"])
                return inner.charge(**request)

            book.ledger.gateway = type("G", (), {"charge": staticmethod(charge)})()

        def meanwhile(_results: Any) -> None:  # another process invoices first, once
            if not calls:
                second.subscribe("bob-sub", "bob", "basic", T0)

        command = c.Subscribe(
            command_id="ada-signup", at=T0, customer_id="ada", plan_id="basic",
            subscription_id="ada-sub", actor="t", source="pytest",
        )  # fmt: skip
        first.ledger.execute_batch([command], before_commit=meanwhile)
        first.rt.catch_up()

        # Ada's first try held INV-000001 when Bob's signup took it first: her transaction
        # was redone with INV-000002, and the number of the try that failed was never charged
        assert sorted(calls) == ["INV-000001:1", "INV-000002:1"]
        assert [e.number for e in first.events_of("ada-sub", "PaymentSucceeded")] == ["INV-000002"]
        assert [e.number for e in first.events_of("bob-sub", "PaymentSucceeded")] == ["INV-000001"]
    finally:
        first.close()
        second.close()


def test_a_repeated_or_stale_outcome_records_nothing(book: Book) -> None:
    book.subscribe("sub", "ada", "basic", T0)
    events = len(book.events("sub"))
    (paid,) = book.events_of("sub", "PaymentSucceeded")
    again = {  # the worker's answer, delivered once more (a redelivery, a restart)
        "command_id": "charge:INV-000001:1", "subscription_id": "sub", "customer_id": "ada",
        "invoice_number": "INV-000001", "attempt": 1, "succeeded": True,
        "reference": paid.reference,
    }  # fmt: skip
    assert book.run(c.RecordChargeOutcome, T0, **again)["duplicate"] is True
    with pytest.raises(IdempotencyConflict):  # another answer for the same charge: refused
        book.run(c.RecordChargeOutcome, T0, **{**again, "succeeded": False})
    stale = book.run(
        c.RecordChargeOutcome, T0, subscription_id="sub", invoice_number="INV-000001",
        attempt=1, succeeded=False, reference="ch_y", decline_code="card_declined",
    )  # fmt: skip
    assert (stale["recorded"], stale["duplicate"]) == (False, False)
    assert len(book.events("sub")) == events
    assert [e.attempt for e in book.events_of("sub", "PaymentSucceeded")] == [1]


def test_a_late_success_on_a_written_off_invoice_records_the_payment(book: Book) -> None:
    book.ledger.gateway.down = 1
    book.subscribe("sub", "ada", "basic", T0)
    book.ledger.gateway.down = 1
    book.run(c.Cancel, T0, subscription_id="sub", immediately=True)  # writes INV-000001 off
    sub = sub_of(book, "sub")
    assert sub.open_invoices == {}
    assert sub.charging == {"INV-000001": PendingCharge(1, 1000)}

    book.run(c.UpdateCustomer, T0, customer_id="ada", email="a@b.example")  # gateway back

    (paid,) = book.events_of("sub", "PaymentSucceeded")
    assert (paid.number, paid.amount, paid.status) == ("INV-000001", 1000, "canceled")
    assert sub_of(book, "sub").charging == {}
    invoice = book.invoice("INV-000001")
    assert (invoice["status"], invoice["amount_paid"]) == ("paid", 1000)


def test_a_payment_by_hand_waits_for_a_pending_charge(book: Book) -> None:
    book.ledger.gateway.down = 2  # the Subscribe's commit, then the refused command's
    book.subscribe("sub", "ada", "basic", T0)
    with pytest.raises(InvalidTransition, match="charge in progress"):
        book.run(
            c.RecordPayment, T0, subscription_id="sub", invoice_number="INV-000001",
            amount=1000, reference="bank-1",
        )  # fmt: skip
    assert book.events_of("sub", "PaymentSucceeded") == []


def test_a_crashed_worker_leaves_the_charge_pending_and_the_next_process_settles_it(
    tmp_path: Path,
) -> None:
    first = Book.embedded(tmp_path / "book", "one")
    first.plan("basic", T(2024, 1, 1))
    first.customer("ada", T(2024, 1, 1))
    first.ledger.after_commit = None  # the process died right after the Subscribe's commit
    first.subscribe("sub", "ada", "basic", T0)
    assert first.events_of("sub", "PaymentSucceeded") == []
    first.close()

    again = Book.embedded(tmp_path / "book", "two")
    try:
        again.run(c.AdvanceClock, T0)  # nothing due: only the worker's catching up
        (paid,) = again.events_of("sub", "PaymentSucceeded")
        assert (paid.number, paid.attempt, paid.timestamp) == ("INV-000001", 1, T0)
        again.run(c.AdvanceClock, T0 + (T0 - T(2024, 1, 9)))
        assert len(again.events_of("sub", "PaymentSucceeded")) == 1
        assert again.ledger.gateway.calls() == {"INV-000001:1": 1}
    finally:
        again.close()


def test_an_open_invoice_is_not_due_a_retry_while_its_charge_is_pending() -> None:
    failed = OpenInvoice(1000).failed(1, T0, T(2024, 1, 11, 8, 30))
    pending = failed.requested(2)
    assert (pending.charging, pending.next_retry_at, pending.next_attempt) == (2, None, 2)
    assert pending.failed(2, T(2024, 1, 11), None) == OpenInvoice(1000, 2, T0, None, None)


def test_payment_failed_of_version_1_loads_with_no_message() -> None:
    state: dict[str, Any] = {"reason": "card_declined"}
    Subscription.PaymentFailed.upcast_v1_v2(state)
    assert state == {"reason": "card_declined", "message": None}
    assert Subscription.PaymentFailed.class_version == 2


def test_a_payment_by_hand_takes_the_place_of_a_retry_asked_for_in_its_own_transaction(
    book: Book,
) -> None:
    book.subscribe("sub", "declined", "basic", T0)  # attempt 1 fails; retry due a day later
    book.run(
        c.RecordPayment, T0 + timedelta(days=2), subscription_id="sub",
        invoice_number="INV-000001", amount=1000, reference="bank-7",
    )  # fmt: skip
    # the retry fell due first, in the same transaction: asked for, never made
    assert [e.attempt for e in book.events_of("sub", "ChargeRequested")] == [1, 2]
    (paid,) = book.events_of("sub", "PaymentSucceeded")
    assert (paid.attempt, paid.reference) == (2, "bank-7")
    assert book.ledger.gateway.keys == ["INV-000001:1"]  # the worker found nothing to charge
    book.advance(T0 + timedelta(days=10))
    assert book.ledger.gateway.keys == ["INV-000001:1"]
    assert book.invoice("INV-000001")["status"] == "paid"


def test_an_answer_that_comes_late_makes_the_missed_retry_due_at_once(book: Book) -> None:
    book.subscribe("sub", "declined", "basic", T0)  # attempt 1 fails at T0: retry at T0+1d
    book.ledger.gateway.down = 1
    book.run(c.UpdateCustomer, T0 + timedelta(days=4), customer_id="ada", email="x@y.example")
    # that command ran the retry of T0+1d as due work; its charge was answered only after
    # the command, at T0+4d: the retry of T0+3d it missed is due then, not in the past
    book.run(c.UpdateCustomer, T0 + timedelta(days=4), customer_id="ada", email="z@y.example")
    failures = book.events_of("sub", "PaymentFailed")
    assert [(e.attempt, e.timestamp, e.next_retry_at) for e in failures] == [
        (1, T0, T0 + timedelta(days=1)),
        (2, T0 + timedelta(days=4), T0 + timedelta(days=4)),
    ]
    book.advance(T0 + timedelta(days=4, hours=1))
    assert [e.attempt for e in book.events_of("sub", "PaymentFailed")] == [1, 2, 3]
    assert book.events_of("sub", "PaymentFailed")[2].timestamp == T0 + timedelta(days=4)
