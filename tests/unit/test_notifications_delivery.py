"""Notifications through a real embedded ledger: the outbox the events make, claims that one
claimer wins, retries, preferences, erasure, trial-ending notices and the support log.
(The SMTP server is real in tests/e2e/test_notify_*.py; here a mailer that keeps what it is
handed stands in, like the sandbox gateway does for payments.)"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ledger_support import Book, T, flat, query_plans

from adapters.smtp import DeliveryError
from bootstrap import Config, Runtime, notifier
from domain import commands as c
from domain.errors import CardNumberRefused, CustomerErased, InvalidInput
from domain.identity import customer_uuid
from domain.notifications import AlreadyDelivered, DeliveryInFlight, delivery_uuid

WALL = datetime(2030, 1, 1, tzinfo=UTC)


class Mailbox:
    """A mailer that keeps what it is handed; `fail` makes the next sends fail."""

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.fail: list[DeliveryError] = []

    def send(self, email: Any, *, timeout: float | None = None) -> str:
        if self.fail:
            raise self.fail.pop(0)
        self.sent.append(email)
        return f"250 queued as {len(self.sent)}"


class Clock:
    def __init__(self) -> None:
        self.now = WALL

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def book(tmp_path: Path) -> Book:
    b = Book.embedded(tmp_path / "book", notify_attempts=3, notify_backoff_s=60)
    b.plan("basic", T(2025, 1, 1))
    b.plan("annual", T(2025, 1, 1), flat(12000), interval="year")
    b.plan("trial", T(2025, 1, 1), flat(1000), trial_days=14)
    yield b
    b.close()


def _make(book: Book, mailbox: Mailbox, clock: Clock) -> Any:
    """The dispatcher bootstrap builds, with this mailer and clock."""
    return notifier(book.rt, mailer=mailbox, now=clock)


def rows(book: Book, **where: str) -> list[dict[str, Any]]:
    clause = " AND ".join(f"{k} = ?" for k in where) or "1 = 1"
    return book.db.query(
        f"SELECT * FROM notifications WHERE {clause} ORDER BY created_at, template, channel",
        list(where.values()),
    )


def history(book: Book, message_id: str) -> list[str]:
    return [type(e).__name__ for e in book.ledger.history(delivery_uuid(message_id))]


def test_each_event_makes_one_message_per_channel_with_no_personal_data(book: Book) -> None:
    book.customer("cus", T(2025, 1, 1), name="Ada Lovelace", email="ada@example.com")
    book.subscribe("sub", "cus", "basic", T(2025, 1, 2))
    made = {(r["template"], r["channel"], r["status"]) for r in rows(book)}
    assert made == {
        (t, ch, "pending") for t in ("welcome", "receipt") for ch in ("email", "in_app", "webhook")
    }
    dump = repr(book.db.query("SELECT * FROM notifications"))
    assert "Ada" not in dump and "ada@example.com" not in dump
    receipt = rows(book, template="receipt", channel="email")[0]
    assert receipt["subscription_id"] == "sub" and '"number": "INV-000001"' in receipt["context"]


def test_a_message_goes_out_once_per_channel(book: Book) -> None:
    mailbox, clock = Mailbox(), Clock()
    book.customer("cus", T(2025, 1, 1))
    counts = _make(book, mailbox, clock).deliver()
    assert (counts["sent"], counts["handed_off"]) == (2, 1)  # email + in-app; webhook
    assert [e.subject for e in mailbox.sent] == ["Welcome, Ada Lovelace"]
    assert mailbox.sent[0].recipient == "ada@example.com"
    assert {r["channel"]: r["status"] for r in rows(book)} == {
        "email": "sent",
        "in_app": "sent",
        "webhook": "handed_off",
    }
    again = _make(book, mailbox, clock).deliver()
    assert sum(again.values()) == 0 and len(mailbox.sent) == 1


def test_the_poll_reads_what_is_due_through_its_index_not_every_message(book: Book) -> None:
    """`serve`'s notifier polls every few seconds: a scan of the whole history each time
    would grow with the book. Its query is served by the partial index of what is due."""
    book.customer("cus", T(2025, 1, 1))
    dispatcher = _make(book, Mailbox(), Clock())
    due: list[Any] = []
    plans = query_plans(book.db, "notifications", lambda: due.append(dispatcher.due()))
    plans += query_plans(book.db, "notifications", dispatcher.deliver)
    assert len(due[0]) == 3  # welcome: email, in-app, webhook
    assert len(plans) >= 3 and dispatcher.due() == []
    for plan in plans:
        assert "USING INDEX notifications_due" in plan, plan
    assert dispatcher.due(include_simulated=True) == []  # on request: a scan, finding none


def test_one_claimer_wins_and_a_dead_claim_runs_out(book: Book) -> None:
    book.customer("cus", T(2025, 1, 1))
    (row,) = rows(book, channel="email")
    claim = dict(
        message_id=row["message_id"],
        customer_id="cus",
        channel="email",
        template="welcome",
        lease_seconds=60,
    )
    first = book.run(c.ClaimDelivery, T(2025, 1, 1), claimer="a", attempted_at=WALL, **claim)
    assert (first["decision"], first["attempt"]) == ("claimed", 1)
    with pytest.raises(DeliveryInFlight):
        book.run(c.ClaimDelivery, T(2025, 1, 1), claimer="b", attempted_at=WALL, **claim)
    later = WALL + timedelta(seconds=61)  # "a" died: its claim ran out
    second = book.run(c.ClaimDelivery, T(2025, 1, 1), claimer="b", attempted_at=later, **claim)
    assert second["attempt"] == 2
    sent = dict(message_id=row["message_id"], customer_id="cus", result="sent", detail="250")
    book.run(c.RecordDelivery, T(2025, 1, 1), attempt=2, attempted_at=later, **sent)
    late = book.run(c.RecordDelivery, T(2025, 1, 1), attempt=1, attempted_at=later, **sent)
    assert late["recorded"] is False  # "a"'s late news changes nothing: sent once
    with pytest.raises(AlreadyDelivered):
        book.run(c.ClaimDelivery, T(2025, 1, 1), claimer="c", attempted_at=later, **claim)
    assert history(book, row["message_id"]) == ["Opened", "Claimed", "Claimed", "Sent"]


def test_two_processes_claiming_at_once_one_wins(tmp_path: Path) -> None:
    data = tmp_path / "shared"
    first = Book.embedded(data)
    first.plan("basic", T(2025, 1, 1))
    for n in range(12):
        first.customer(f"cus{n}", T(2025, 1, 1))
    messages = rows(first, channel="email")
    won: list[str] = []
    lost: list[str] = []

    def claimer(name: str) -> None:
        with Runtime(Config(data_dir=data)) as rt:
            for row in messages:
                try:
                    rt.ledger.execute(
                        c.ClaimDelivery(
                            command_id=f"{name}-{row['message_id']}",
                            at=T(2025, 1, 1),
                            message_id=row["message_id"],
                            customer_id=row["customer_id"],
                            channel="email",
                            template="welcome",
                            claimer=name,
                            attempted_at=WALL,
                        )
                    )
                    won.append(row["message_id"])
                except DeliveryInFlight:
                    lost.append(row["message_id"])

    threads = [threading.Thread(target=claimer, args=(f"p{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == sorted(r["message_id"] for r in messages)  # each exactly once
    assert len(lost) == 2 * len(messages)
    for row in messages:
        assert history(first, row["message_id"]).count("Claimed") == 1
    first.close()


def test_failures_are_retried_with_backoff_then_given_up(book: Book) -> None:
    mailbox, clock = Mailbox(), Clock()
    book.customer("cus", T(2025, 1, 1))
    mailbox.fail = [DeliveryError("451 try later")] * 3
    assert _make(book, mailbox, clock).deliver()["failed"] == 1
    (row,) = rows(book, channel="email")
    assert (row["status"], row["attempts"], row["last_error"]) == ("failed", 1, "451 try later")
    assert row["next_attempt_at"] == "2030-01-01T00:01:00Z"
    assert _make(book, mailbox, clock).deliver()["failed"] == 0  # not due yet: nothing tried
    clock.now += timedelta(seconds=60)
    _make(book, mailbox, clock).deliver()
    assert rows(book, channel="email")[0]["next_attempt_at"] == "2030-01-01T00:03:00Z"  # 120 s
    clock.now += timedelta(seconds=120)
    _make(book, mailbox, clock).deliver()  # the third attempt of three
    (row,) = rows(book, channel="email")
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("gave_up", 3, None)
    assert mailbox.sent == []


def test_a_permanent_refusal_gives_up_at_once(book: Book) -> None:
    mailbox, clock = Mailbox(), Clock()
    book.customer("cus", T(2025, 1, 1))
    mailbox.fail = [DeliveryError("recipient refused: 550 no such user", permanent=True)]
    assert _make(book, mailbox, clock).deliver()["gave_up"] == 1
    assert rows(book, channel="email")[0]["status"] == "gave_up"


def test_preferences_are_honoured_but_receipts_always_go_by_email(book: Book) -> None:
    mailbox, clock = Mailbox(), Clock()
    book.run(
        c.RegisterCustomer,
        T(2025, 1, 1),
        customer_id="quiet",
        name="Q",
        email="q@example.com",
        payment_token="tok_visa",
        preferences={"notify.email": "off", "notify.in_app": "off", "notify.reminders": "off"},
    )
    book.subscribe("sub", "quiet", "basic", T(2025, 1, 2))
    book.advance(T(2025, 1, 26))  # the renewal reminder is due Jan 26 (7 days before Feb 2)
    _make(book, mailbox, clock).deliver()
    assert [e.subject for e in mailbox.sent] == ["Receipt for invoice INV-000001: 10.00 USD paid"]
    status = {(r["template"], r["channel"]): r["status"] for r in rows(book)}
    assert status[("welcome", "email")] == "skipped"
    assert status[("receipt", "in_app")] == "skipped"
    assert status[("renewal_reminder", "email")] == "skipped"
    assert status[("renewal_reminder", "webhook")] == "skipped"
    assert status[("receipt", "webhook")] == "handed_off"


def test_preferences_changed_later_apply_from_then_on_and_keep_the_others(book: Book) -> None:
    """`customer update --preference`: the keys given change, the others stay; what is sent
    after the change follows it, a receipt still goes by email."""
    mailbox, clock = Mailbox(), Clock()
    book.run(
        c.RegisterCustomer,
        T(2025, 1, 1),
        customer_id="later",
        name="L",
        email="l@example.com",
        payment_token="tok_visa",
        preferences={"notify.in_app": "off"},
    )
    book.subscribe("sub", "later", "basic", T(2025, 1, 2))
    _make(book, mailbox, clock).deliver()
    assert [e.subject for e in mailbox.sent] == [
        "Welcome, L",
        "Receipt for invoice INV-000001: 10.00 USD paid",
    ]
    book.run(
        c.UpdateCustomer,
        T(2025, 1, 3),
        customer_id="later",
        preferences={"notify.email": "off"},
    )
    book.advance(T(2025, 2, 2))  # the reminder (Jan 26), then the renewal and its receipt
    _make(book, mailbox, clock).deliver()
    assert [e.subject for e in mailbox.sent[2:]] == [
        "Receipt for invoice INV-000002: 10.00 USD paid"
    ]
    status = {(r["template"], r["channel"]): r["status"] for r in rows(book)}
    assert status[("renewal_reminder", "email")] == "skipped"  # turned off on Jan 3
    assert status[("renewal_reminder", "in_app")] == "skipped"  # still off from the start
    with pytest.raises(InvalidInput):
        book.run(c.UpdateCustomer, T(2025, 2, 3), customer_id="later", preferences={})


def test_an_erased_customer_gets_nothing_more(book: Book) -> None:
    mailbox, clock = Mailbox(), Clock()
    book.customer("cus", T(2025, 1, 1))
    book.subscribe("sub", "cus", "basic", T(2025, 1, 2))
    book.run(c.EraseCustomer, T(2025, 1, 3), customer_id="cus")
    assert {r["status"] for r in rows(book)} == {"gave_up"}  # what waited is given up
    book.advance(T(2025, 3, 1))  # the subscription churns for want of anybody to bill
    assert _make(book, mailbox, clock).deliver()["sent"] == 0
    assert mailbox.sent == [] and {r["status"] for r in rows(book)} == {"gave_up"}
    with pytest.raises(CustomerErased):
        book.run(
            c.RecordCustomerNote,
            T(2025, 3, 2),
            customer_id="cus",
            channel="phone",
            text="still there?",
        )


def test_a_trial_gets_one_notice_three_days_before_it_ends(book: Book) -> None:
    book.customer("cus", T(2025, 1, 1))
    book.subscribe("sub", "cus", "trial", T(2025, 1, 10))  # ends Jan 24
    book.advance(T(2025, 1, 20, 23, 59, 59))
    assert book.events_of("sub", "TrialEndingSoon") == []
    book.advance(T(2025, 1, 21))
    (notice,) = book.events_of("sub", "TrialEndingSoon")
    assert (notice.timestamp, notice.trial_end, notice.expected_amount) == (
        T(2025, 1, 21),
        T(2025, 1, 24),
        1000,
    )
    book.advance(T(2025, 2, 1))
    assert len(book.events_of("sub", "TrialEndingSoon")) == 1
    assert len(rows(book, template="trial_ending")) == 2  # email and in-app


def test_a_rebuild_restores_every_status_and_sends_nothing_again(book: Book) -> None:
    mailbox, clock = Mailbox(), Clock()
    book.customer("cus", T(2025, 1, 1))
    book.subscribe("sub", "cus", "annual", T(2025, 1, 2))
    _make(book, mailbox, clock).deliver()
    before = rows(book)
    book.rt.feeder.rebuild(next(p for p in book.rt.projections if p.name == "notifications"))
    assert rows(book) == before
    assert sum(_make(book, mailbox, clock).deliver().values()) == 0
    assert len(mailbox.sent) == 2


def test_a_support_note_is_recorded_encrypted(book: Book) -> None:
    book.customer("cus", T(2025, 1, 1))
    out = book.run(
        c.RecordCustomerNote,
        T(2025, 1, 5),
        customer_id="cus",
        channel="chat",
        text="Wants an annual plan",
    )
    assert out["note"] == "recorded" and "Wants" not in repr(out)
    (event,) = [
        e for e in book.ledger.history(customer_uuid("cus")) if type(e).__name__ == "NoteRecorded"
    ]
    assert event.channel == "chat" and "Wants" not in event.note
    plain = book.ledger.vault.decrypt(str(customer_uuid("cus")), event.note)
    assert plain == {"text": "Wants an annual plan"}
    with pytest.raises(CardNumberRefused):
        book.run(
            c.RecordCustomerNote,
            T(2025, 1, 5),
            customer_id="cus",
            channel="phone",
            text="card 4242 4242 4242 4242 exp 12/30",
        )
