"""Webhook endpoints and deliveries as ledger commands and events (no network here)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from ledger_support import Book, T, query_plans

from domain import commands as c
from domain.errors import AlreadyExists, InvalidInput, InvalidTransition
from domain.webhooks.delivery import (
    FAILED,
    GAVE_UP,
    PENDING,
    SENT,
    WebhookDelivery,
    delivery_id_for,
    delivery_uuid,
)
from domain.webhooks.endpoints import ENDPOINTS_ID, UnknownWebhookEndpoint, WebhookEndpoints
from projections import webhooks as model

URL = "https://crm.example.com/hooks/subledger"


@pytest.fixture
def book(tmp_path):
    b = Book.embedded(tmp_path)
    b.plan("basic", T(2025, 1, 1))
    yield b
    b.close()


def add(book: Book, endpoint_id: str, at, **fields) -> dict:
    return book.run(c.AddWebhookEndpoint, at, endpoint_id=endpoint_id, url=URL, **fields)


def schedule(book: Book, record, endpoint_id: str, at) -> dict:
    return book.run(
        c.ScheduleWebhookDelivery,
        at,
        endpoint_id=endpoint_id,
        event_id=record.event_id,
        source_event=record.name,
        source_id=record.aggregate_id,
        source_version=record.version,
        occurred_at=record.at,
        customer_id=record.data.get("customer_id"),
    )


def attempt(book: Book, delivery_id: str, n: int, code: int, at, later=None) -> dict:
    return book.run(
        c.RecordWebhookAttempt,
        at,
        delivery_id=delivery_id,
        attempt=n,
        attempted_at=at,
        status_code=code,
        error="" if 200 <= code < 300 else f"HTTP {code}",
        next_attempt_at=later,
    )


def registered(book: Book):
    (record,) = [r for r in book.records() if r.name == "Customer.Registered"]
    return record


def test_an_endpoint_receives_its_types_from_the_time_it_was_added(book: Book) -> None:
    add(book, "we_all", T(2025, 1, 2))
    add(book, "we_paid", T(2025, 1, 2), event_types=("invoice.paid",))
    with pytest.raises(AlreadyExists):
        add(book, "we_all", T(2025, 1, 2))
    registry = book.ledger.get(WebhookEndpoints, ENDPOINTS_ID)
    assert [e.endpoint_id for e in registry.receivers("customer.created", T(2025, 1, 2))] == [
        "we_all"
    ]
    assert registry.receivers("customer.created", T(2025, 1, 1)) == []  # before it was added
    assert {e.endpoint_id for e in registry.receivers("invoice.paid", T(2025, 2, 1))} == {
        "we_all",
        "we_paid",
    }
    book.run(c.RemoveWebhookEndpoint, T(2025, 1, 5), endpoint_id="we_all")
    with pytest.raises(InvalidTransition, match="already removed"):
        book.run(c.RemoveWebhookEndpoint, T(2025, 1, 6), endpoint_id="we_all")
    with pytest.raises(UnknownWebhookEndpoint):
        book.run(c.RemoveWebhookEndpoint, T(2025, 1, 6), endpoint_id="we_none")
    registry = book.ledger.get(WebhookEndpoints, ENDPOINTS_ID)
    assert [e.endpoint_id for e in registry.receivers("invoice.paid", T(2025, 1, 6))] == ["we_paid"]
    rows = {r["endpoint_id"]: r for r in model.endpoints(book.db)}
    assert rows["we_all"]["status"] == "removed" and rows["we_all"]["removed_at"]
    assert rows["we_paid"]["event_types"] == ["invoice.paid"]


def test_a_delivery_is_scheduled_once_per_event_and_endpoint(book: Book) -> None:
    add(book, "we_1", T(2025, 1, 2))
    add(book, "we_paid", T(2025, 1, 2), event_types=("invoice.paid",))
    book.customer("cus_1", T(2025, 1, 3))
    record = registered(book)
    first = schedule(book, record, "we_1", T(2025, 1, 3))
    again = schedule(book, record, "we_1", T(2025, 1, 3))
    assert first["scheduled"] and not again["scheduled"]
    assert first["delivery_id"] == again["delivery_id"] == delivery_id_for(record.event_id, "we_1")
    with pytest.raises(InvalidInput, match=r"does not receive customer\.created"):
        schedule(book, record, "we_paid", T(2025, 1, 3))
    (row,) = model.deliveries(book.db)
    assert row["status"] == PENDING and row["webhook_type"] == "customer.created"
    assert row["customer_id"] == "cus_1" and row["attempts"] == 0


def test_attempts_count_up_and_decide_the_status(book: Book) -> None:
    add(book, "we_1", T(2025, 1, 2))
    book.customer("cus_1", T(2025, 1, 3))
    delivery_id = schedule(book, registered(book), "we_1", T(2025, 1, 3))["delivery_id"]
    at = T(2025, 1, 3, 0, 5)
    assert attempt(book, delivery_id, 1, 503, at, at + timedelta(minutes=1))["status"] == FAILED
    with pytest.raises(InvalidTransition, match="not the next one"):
        attempt(book, delivery_id, 1, 200, at)  # a second sender's report of the same attempt
    assert attempt(book, delivery_id, 2, 0, at, at + timedelta(minutes=5))["status"] == FAILED
    assert attempt(book, delivery_id, 3, 204, at)["status"] == SENT
    with pytest.raises(InvalidTransition, match="delivered already"):
        attempt(book, delivery_id, 4, 200, at)
    (row,) = model.deliveries(book.db)
    assert (row["status"], row["attempts"], row["last_status_code"]) == (SENT, 3, 204)
    assert row["next_attempt_at"] is None
    log = model.attempts(book.db, delivery_id)
    assert [(a["attempt"], a["status_code"], a["status"]) for a in log] == [
        (1, 503, FAILED),
        (2, 0, FAILED),
        (3, 204, SENT),
    ]


def test_no_next_attempt_after_a_failure_means_given_up_and_a_replay_starts_a_round(
    book: Book,
) -> None:
    add(book, "we_1", T(2025, 1, 2))
    book.customer("cus_1", T(2025, 1, 3))
    delivery_id = schedule(book, registered(book), "we_1", T(2025, 1, 3))["delivery_id"]
    at = T(2025, 1, 3, 1)
    assert attempt(book, delivery_id, 1, 500, at, None)["status"] == GAVE_UP
    with pytest.raises(InvalidTransition, match="given up"):
        attempt(book, delivery_id, 2, 200, at)
    book.run(c.ReplayWebhookDelivery, T(2025, 1, 4), delivery_id=delivery_id)
    delivery = book.ledger.get(WebhookDelivery, delivery_uuid(delivery_id))
    assert (delivery.status, delivery.round_started_at, delivery.round_attempts) == (
        PENDING,
        None,
        0,
    )
    assert delivery.due(T(2025, 1, 4))
    with pytest.raises(InvalidTransition, match="pending already"):
        book.run(c.ReplayWebhookDelivery, T(2025, 1, 4), delivery_id=delivery_id)
    assert attempt(book, delivery_id, 2, 200, T(2025, 1, 4))["status"] == SENT
    book.run(c.RemoveWebhookEndpoint, T(2025, 1, 5), endpoint_id="we_1")
    with pytest.raises(InvalidInput, match="was removed"):
        book.run(c.ReplayWebhookDelivery, T(2025, 1, 5), delivery_id=delivery_id)


def test_an_open_delivery_of_a_removed_endpoint_shows_canceled_and_is_never_due(
    book: Book,
) -> None:
    add(book, "we_1", T(2025, 1, 2))
    book.customer("cus_1", T(2025, 1, 3))
    delivery_id = schedule(book, registered(book), "we_1", T(2025, 1, 3))["delivery_id"]
    assert model.due(book.db, T(2025, 1, 3)) == [delivery_id]
    book.run(c.RemoveWebhookEndpoint, T(2025, 1, 4), endpoint_id="we_1")
    assert model.due(book.db, T(2025, 1, 5)) == []
    assert [r["status"] for r in model.deliveries(book.db)] == ["canceled"]
    assert [r["delivery_id"] for r in model.deliveries(book.db, status="canceled")] == [delivery_id]


def test_the_senders_poll_reads_the_open_deliveries_through_their_index(book: Book) -> None:
    """`serve`'s webhook sender polls every few seconds: not a scan of every delivery ever
    made, which grows with the book, but the partial index of the open ones."""
    add(book, "we_1", T(2025, 1, 2))
    book.customer("cus_1", T(2025, 1, 3))
    delivery_id = schedule(book, registered(book), "we_1", T(2025, 1, 3))["delivery_id"]
    found: list[list[str]] = []
    (plan,) = query_plans(
        book.db, "webhook_deliveries", lambda: found.append(model.due(book.db, T(2025, 1, 3)))
    )
    assert found == [[delivery_id]]
    assert "USING INDEX webhook_deliveries_open" in plan, plan


def test_a_failed_delivery_is_due_only_once_its_next_attempt_comes(book: Book) -> None:
    add(book, "we_1", T(2025, 1, 2))
    book.customer("cus_1", T(2025, 1, 3))
    delivery_id = schedule(book, registered(book), "we_1", T(2025, 1, 3))["delivery_id"]
    at = T(2025, 1, 3, 1)
    attempt(book, delivery_id, 1, 500, at, at + timedelta(minutes=5))
    assert model.due(book.db, at + timedelta(minutes=4)) == []
    assert model.due(book.db, at + timedelta(minutes=5)) == [delivery_id]
    with pytest.raises(InvalidInput, match="cannot be before"):
        attempt(book, delivery_id, 2, 500, at, at - timedelta(seconds=1))
