"""The subscription's value types: statuses, open invoices and due work, not strings."""

from __future__ import annotations

import heapq
import json
from datetime import timedelta

from ledger_support import Book, T

from domain.identity import subscription_uuid
from domain.subscription import LIVE, PAYING, Due, DueKind, OpenInvoice, Status, Subscription
from domain.subscription.schedule import ReminderLeads, next_due

T0 = T(2025, 1, 1)


def test_statuses_equal_the_strings_the_events_store() -> None:
    assert [s.value for s in Status] == ["trialing", "active", "past_due", "paused", "canceled"]
    assert Status.PAST_DUE == "past_due" and json.dumps(Status.ACTIVE) == '"active"'
    assert {"trialing", "active", "past_due"} == LIVE
    assert {"active", "past_due"} == PAYING and PAYING < LIVE


def test_a_failed_charge_replaces_the_open_invoice_and_keeps_when_dunning_began() -> None:
    invoice = OpenInvoice(amount_due=1000)
    first = invoice.failed(1, T0, T0 + timedelta(days=1))
    second = first.failed(2, T0 + timedelta(days=1), T0 + timedelta(days=3))
    assert invoice == OpenInvoice(1000, 0, None, None)  # unchanged: a frozen value
    assert second == OpenInvoice(1000, 2, T0, T0 + timedelta(days=3))
    assert second.next_attempt == 3


def test_due_work_runs_by_time_then_retry_remind_trial_end_renew_then_invoice() -> None:
    later = T0 + timedelta(hours=1)
    dues = [
        Due(later, DueKind.RETRY, "INV-000001"),
        Due(T0, DueKind.RENEW),
        Due(T0, DueKind.RETRY, "INV-000009"),
        Due(T0, DueKind.REMIND),
        Due(T0, DueKind.RETRY, "INV-000002"),
        Due(T0, DueKind.TRIAL_END),
    ]
    heap: list[Due] = []
    for due in dues:
        heapq.heappush(heap, due)
    order = [heapq.heappop(heap) for _ in dues]
    assert [(d.at, d.kind, d.invoice) for d in order] == [
        (T0, DueKind.RETRY, "INV-000002"),
        (T0, DueKind.RETRY, "INV-000009"),
        (T0, DueKind.REMIND, None),
        (T0, DueKind.TRIAL_END, None),
        (T0, DueKind.RENEW, None),
        (later, DueKind.RETRY, "INV-000001"),
    ]


def test_a_declined_subscription_is_due_a_retry_of_its_invoice(book: Book) -> None:
    book.plan("basic", T0)
    book.customer("cus", T0, token="tok_chargeDeclined")
    book.subscribe("sub", "cus", "basic", T0)
    sub = book.ledger.get(Subscription, subscription_uuid("sub"))
    assert sub is not None and sub.status is Status.PAST_DUE
    assert sub.open_invoices == {"INV-000001": OpenInvoice(1000, 1, T0, T0 + timedelta(days=1))}
    assert next_due(sub, ReminderLeads()) == Due(
        T0 + timedelta(days=1), DueKind.RETRY, "INV-000001"
    )
    (failed,) = book.events_of("sub", "PaymentFailed")
    assert type(failed.status) is str and failed.status == "past_due"  # stored plain
