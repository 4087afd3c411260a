"""As-of reads (state at a past effective time) and the recorded time stamped on every event."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from ledger_support import Book, T, flat

from domain import commands as c
from domain.errors import InvalidInput
from domain.identity import customer_uuid
from projections.as_of import customer_at, subscription_at, subscription_invoices_at, version_at
from schemas.codec import EventCodec
from schemas.records import to_record

FAR = T(2100, 1, 1)


def ev(version: int, day: int) -> SimpleNamespace:
    return SimpleNamespace(originator_version=version, timestamp=T(2024, 1, day))


def test_version_at_is_the_last_event_at_or_before_the_time() -> None:
    events = [ev(1, 1), ev(2, 5), ev(3, 5), ev(4, 9)]
    assert version_at(events, T(2023, 12, 31)) is None
    assert version_at(events, T(2024, 1, 1)) == 1  # inclusive
    assert version_at(events, T(2024, 1, 5)) == 3  # every event at that instant
    assert version_at(events, T(2024, 1, 8, 23)) == 3
    assert version_at(events, FAR) == 4


@pytest.fixture
def shop(book: Book) -> Book:
    book.plan("basic", T(2024, 1, 1), flat(1000))
    book.plan("seats", T(2024, 1, 1), {"model": "per_unit", "amount": 500, "tiers": []})
    book.customer("ada", T(2024, 1, 1))
    return book


def test_a_subscription_as_of_a_date_between_two_plan_changes(shop: Book) -> None:
    shop.subscribe("s1", "ada", "basic", T(2024, 1, 1))
    shop.run(c.ChangePlan, T(2024, 1, 10), subscription_id="s1", plan_id="seats", quantity=3)
    shop.run(c.ChangePlan, T(2024, 1, 20), subscription_id="s1", plan_id="seats", quantity=7)
    ledger = shop.ledger
    before = subscription_at(ledger, "s1", T(2024, 1, 5))
    between = subscription_at(ledger, "s1", T(2024, 1, 15))
    after = subscription_at(ledger, "s1", T(2024, 1, 25))
    assert (before["plan_id"], before["quantity"], before["mrr"]) == ("basic", 1, 1000)
    assert (between["plan_id"], between["quantity"], between["mrr"]) == ("seats", 3, 1500)
    assert (after["plan_id"], after["quantity"], after["mrr"]) == ("seats", 7, 3500)
    with pytest.raises(InvalidInput, match="did not exist yet at 2023-12-31T00:00:00Z"):
        subscription_at(ledger, "s1", T(2023, 12, 31))
    with pytest.raises(InvalidInput, match="unknown subscription 'nope'"):
        subscription_at(ledger, "nope", FAR)


def test_as_of_after_the_last_event_is_what_the_read_model_shows(shop: Book) -> None:
    shop.customer("bob", T(2024, 1, 1), token="tok_chargeDeclined")
    shop.subscribe("s1", "ada", "basic", T(2024, 1, 1))
    shop.subscribe("s2", "bob", "basic", T(2024, 1, 2))
    shop.run(c.ChangePlan, T(2024, 1, 10), subscription_id="s1", plan_id="seats", quantity=2)
    shop.advance(T(2024, 3, 15))  # renewals, bob's retries and his involuntary churn
    for sub_id in ("s1", "s2"):
        live = shop.subscription(sub_id)
        then = subscription_at(shop.ledger, sub_id, FAR)
        assert {k: then[k] for k in live} == live, sub_id
        invoices = subscription_invoices_at(shop.ledger, sub_id, FAR)
        assert [{k: i[k] for k in i if k != "next_retry_at"} for i in invoices] == (
            shop.invoices(sub_id)
        )
    assert shop.subscription("s2")["status"] == "canceled"  # the case covers a write-off
    assert {i["status"] for i in shop.invoices("s2")} == {"uncollectible"}


def test_invoices_as_of_have_their_status_then(shop: Book) -> None:
    shop.customer("bob", T(2024, 1, 1), token="tok_chargeDeclined")
    shop.subscribe("s2", "bob", "basic", T(2024, 1, 2))
    (number,) = [i["number"] for i in shop.invoices("s2")]
    shop.run(
        c.RecordPayment,
        T(2024, 1, 4),
        subscription_id="s2",
        invoice_number=number,
        amount=1000,
        currency="USD",
        reference="bank-1",
    )
    assert subscription_invoices_at(shop.ledger, "s2", T(2024, 1, 1)) == []
    noon = T(2024, 1, 2, 12)  # the first charge declined, its retry due the next day
    (declined,) = subscription_invoices_at(shop.ledger, "s2", noon)
    assert (declined["status"], declined["amount_paid"], declined["attempts"]) == ("open", 0, 1)
    assert declined["next_retry_at"] == "2024-01-03T00:00:00Z"
    sub = subscription_at(shop.ledger, "s2", noon)
    assert (sub["status"], sub["open_invoices"]) == ("past_due", [number])
    assert sub["next_retry_at"] == "2024-01-03T00:00:00Z"
    (on_5th,) = subscription_invoices_at(shop.ledger, "s2", T(2024, 1, 5))
    assert (on_5th["status"], on_5th["amount_paid"]) == ("paid", 1000)
    assert customer_at(shop.ledger, "bob", ["s2"], noon)["balance"] == {
        "USD": {"outstanding": 1000, "credit": 0}
    }
    assert customer_at(shop.ledger, "bob", ["s2"], T(2024, 1, 5))["balance"] == {
        "USD": {"outstanding": 0, "credit": 0}
    }


def test_a_customer_as_of_before_and_after_an_update(shop: Book) -> None:
    shop.subscribe("s1", "ada", "basic", T(2024, 2, 1))
    shop.run(c.UpdateCustomer, T(2024, 1, 10), customer_id="ada", email="ada@new.example")
    before = customer_at(shop.ledger, "ada", ["s1"], T(2024, 1, 5))
    after = customer_at(shop.ledger, "ada", ["s1"], T(2024, 2, 2))
    assert (before["email"], before["subscriptions"]) == ("ada@example.com", [])
    assert (after["email"], after["subscriptions"]) == ("ada@new.example", ["s1"])
    with pytest.raises(InvalidInput, match="customer 'ada' did not exist yet"):
        customer_at(shop.ledger, "ada", [], T(2023, 1, 1))
    shop.run(c.EraseCustomer, T(2024, 3, 1), customer_id="ada")
    erased_since = customer_at(shop.ledger, "ada", ["s1"], T(2024, 1, 5))
    assert erased_since["erased"] is False and erased_since["personal_data_erased"] is True
    assert "email" not in erased_since  # the key is gone: no date shows the person again


def test_every_event_records_when_it_was_written(shop: Book) -> None:
    shop.ledger.recorded_clock = lambda: T(2031, 5, 6, 7, 8, 9)
    shop.run(c.UpdateCustomer, T(2024, 1, 10), customer_id="ada", email="ada@new.example")
    (updated,) = [
        e for e in shop.ledger.history(customer_uuid("ada")) if type(e).__name__ == "Updated"
    ]
    assert updated.meta["recorded_at"] == "2031-05-06T07:08:09Z"
    assert updated.timestamp == T(2024, 1, 10)  # effective time is untouched
    record = to_record(updated)
    codec = EventCodec()
    assert codec.decode(codec.encode(record)).meta == record.meta  # the Avro contract keeps it
    shop.ledger.recorded_clock = None  # a ledger without a clock: no stamp, like old events
    shop.run(c.UpdateCustomer, T(2024, 1, 11), customer_id="ada", email="ada@third.example")
    last = shop.ledger.history(customer_uuid("ada"))[-1]
    assert "recorded_at" not in last.meta
    assert "recorded_at" not in codec.decode(codec.encode(to_record(last))).meta


def test_the_runtime_stamps_the_wall_clock(book: Book) -> None:
    from adapters.clock import now
    from domain.base import iso

    start = iso(now())
    book.plan("basic", T(2024, 1, 1), flat(1000))  # effective in 2024, recorded today
    end = iso(now())
    (record,) = [r for r in book.records() if r.aggregate_type == "Plan"]
    assert start <= record.meta["recorded_at"] <= end  # bootstrap hands the wall clock in
    assert record.at == T(2024, 1, 1)
