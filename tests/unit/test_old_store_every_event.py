"""A store holding every event type of 0.2 loads with today's classes, to the same state.

The fixture (tests/fixtures/book-0.2) was written before the domain moved into packages, so
its 28 stored topics name the old modules (`domain.subscription:Subscription.Paused`,
`domain.plan:Plan.Retired`, ...); see its README.
"""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bootstrap import Config, Runtime
from domain.catalog.plan import Plan
from domain.customer import Customer
from domain.identity import customer_uuid, plan_uuid, subscription_uuid
from domain.subscription import Subscription
from projections import reports

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "book-0.2"


@pytest.fixture
def book(tmp_path: Path) -> Path:
    data_dir = tmp_path / "book-0.2"
    data_dir.mkdir()
    for name in ("events.sqlite", "keys.sqlite"):
        with gzip.open(FIXTURE / f"{name}.gz") as src, open(data_dir / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return data_dir


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def subscription_state(sub: Subscription) -> dict[str, Any]:
    """The state 0.2 recorded in state.json, read off today's aggregate."""
    return {
        "version": sub.version,
        "status": sub.status,
        "mrr": sub.mrr,
        "plan_id": sub.plan_id,
        "plan_version": sub.plan_version,
        "quantity": sub.quantity,
        "pricing": sub.pricing.to_dict(),
        "anchor": _iso(sub.anchor),
        "period_index": sub.period_index,
        "period_start": _iso(sub.period_start),
        "period_end": _iso(sub.period_end),
        "cancel_at_period_end": sub.cancel_at_period_end,
        "credit_balance": sub.credit_balance,
        "coupon_periods_left": sub.coupon_periods_left,
        "discounted": sub.discounted,
        "billed_through": _iso(sub.billed_through),
        "period_invoice": sub.period_invoice,
        "reminded_for": _iso(sub.reminded_for),
        "open_invoices": {
            number: {
                "amount_due": inv.amount_due,
                "failures": inv.failures,
                "first_failed_at": _iso(inv.first_failed_at),
                "next_retry_at": _iso(inv.next_retry_at),
            }
            for number, inv in sub.open_invoices.items()
        },
    }


def test_every_stored_event_type_of_0_2_maps_to_a_class_of_today(book: Path) -> None:
    with Runtime(Config(data_dir=book)) as runtime:
        ledger = runtime.ledger
        notifications = ledger.recorder.select_notifications(0, 100_000)
        topics = {n.topic for n in notifications}
        assert len(topics) == 28  # every event type 0.2 could store
        assert "domain.subscription:Subscription.Paused" in topics
        names = set()
        for notification in notifications:
            event = ledger.mapper.to_domain_event(notification)
            old_class = notification.topic.split(":")[1]
            assert type(event).__qualname__ == old_class
            names.add(old_class)
        assert len(names) == 28


def test_a_0_2_store_rebuilds_every_aggregate_to_the_state_0_2_had(book: Path) -> None:
    expected = json.loads((FIXTURE / "state.json").read_text())
    with Runtime(Config(data_dir=book)) as runtime:
        ledger = runtime.ledger
        for sub_id, state in expected["subscriptions"].items():
            sub = ledger.get(Subscription, subscription_uuid(sub_id))
            assert sub is not None
            assert subscription_state(sub) == state, sub_id
        for plan_id, state in expected["plans"].items():
            plan = ledger.get(Plan, plan_uuid(plan_id))
            assert plan is not None
            assert {
                "version": plan.version,
                "price_version": plan.price_version,
                "retired": plan.retired,
                "pricing": plan.pricing.to_dict(),
            } == state
        for customer_id, state in expected["customers"].items():
            customer = ledger.get(Customer, customer_uuid(customer_id))
            assert customer is not None
            assert {
                "version": customer.version,
                "erased": customer.erased,
                "country": customer.country,
            } == state
        assert expected["subscriptions"]["sub_8"]["status"] == "past_due"  # an open dunning


def test_a_0_2_store_rebuilds_its_read_models_to_the_answers_it_gave(book: Path) -> None:
    with Runtime(Config(data_dir=book)) as runtime:
        runtime.catch_up()
        invoices = json.loads(json.dumps(reports.invoices(runtime.db), default=str))
        assert invoices == json.loads(gzip.decompress((FIXTURE / "invoices.json.gz").read_bytes()))
        assert reports.mrr(runtime.db) == json.loads((FIXTURE / "mrr.json").read_text())
        subscriptions = json.loads(json.dumps(reports.subscriptions(runtime.db), default=str))
        assert subscriptions == json.loads((FIXTURE / "subscriptions.json").read_text())


def test_a_0_2_store_carries_on_its_dunning_with_today_s_code(book: Path) -> None:
    from domain import commands as c

    with Runtime(Config(data_dir=book)) as runtime:
        ledger = runtime.ledger
        ledger.execute(
            c.AdvanceClock(command_id="b02-next", at=datetime.fromisoformat("2026-01-20T00:00Z"))
        )
        sub = ledger.get(Subscription, subscription_uuid("sub_8"))
        assert sub is not None
        assert sub.status == "canceled"  # the last retry (day 7) failed: churned
        assert sub.open_invoices == {}
        churned = [e for e in ledger.history(sub.id) if type(e).__name__ == "Churned"]
        assert churned[-1].written_off == ["INV-000056"]
