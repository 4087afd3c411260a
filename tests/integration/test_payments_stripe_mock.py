"""The Stripe adapter against stripe-mock, Stripe's official API mock (`ops/services up --with
stripe-mock`): every request the adapter makes must pass stripe-mock's OpenAPI validation and
every answer must be read. stripe-mock keeps no state and never declines, so what a charge
comes to here is only what its fixtures say; the decline and error mapping is tested against
Stripe's documented bodies in tests/unit/test_payments_stripe.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.stripe_gateway import Journal, StripeGateway
from bootstrap import Config, Runtime
from domain import commands as c

ROOT = Path(__file__).resolve().parents[2]
PORT = int(os.environ.get("SUBLEDGER_STRIPE_MOCK_PORT") or 12111)  # as ops/services reads it
API_BASE = f"http://127.0.0.1:{PORT}"


def _open() -> bool:
    try:
        socket.create_connection(("127.0.0.1", PORT), timeout=2).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def stripe_mock() -> str:
    """stripe-mock's URL; started by ops/services when it is not running (never skipped)."""
    if not _open():
        done = subprocess.run(
            [str(ROOT / "ops" / "services"), "up", "--with", "stripe-mock"],
            capture_output=True,
            text=True,
            timeout=900,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0 or not _open():
            pytest.fail(f"stripe-mock did not start:\n{done.stdout}{done.stderr}", pytrace=False)
    return API_BASE


def test_a_charge_creates_the_intent_journals_it_then_confirms_it(stripe_mock: str) -> None:
    journal = Journal()
    gateway = StripeGateway("sk_test_123", api_base=stripe_mock, journal=journal)
    result = gateway.charge(
        token="pm_card_visa", amount=1000, currency="USD", idempotency_key="INV-000001:1"
    )
    entry = journal.get("INV-000001:1")
    assert entry["intent"].startswith("pi_") and entry["confirming"] is True
    assert result.reference == entry["intent"]  # the charge is known by its intent's id
    # stripe-mock answers every confirmation with its fixture intent, which needs a new
    # payment method and carries no decline code: read as a generic decline
    assert (result.succeeded, result.code) == (False, "card_declined")


def test_a_charge_asked_again_is_read_back_by_its_intent_id(stripe_mock: str) -> None:
    journal = Journal()
    journal.put("INV-000002:1", intent="pi_journaled", confirming=True)
    gateway = StripeGateway("sk_test_123", api_base=stripe_mock, journal=journal)
    result = gateway.charge(
        token="pm_card_visa", amount=1000, currency="USD", idempotency_key="INV-000002:1"
    )
    assert result.reference == "pi_journaled"  # retrieved by id: no second intent
    assert journal.get("INV-000002:1") == {"intent": "pi_journaled", "confirming": True}


def test_a_refund_is_accepted_and_found_again_by_its_key(stripe_mock: str) -> None:
    journal = Journal()
    gateway = StripeGateway("sk_test_123", api_base=stripe_mock, journal=journal)
    for reference in ("pi_123", "ch_123"):
        result = gateway.refund(
            charge_reference=reference,
            amount=400,
            currency="USD",
            idempotency_key=f"CN-{reference}:refund",
        )
        assert result.succeeded and result.reference.startswith("re_"), result
        assert journal.get(f"refund:CN-{reference}:refund") == {"sent": True}


def test_the_ledger_charges_through_stripe_when_configured(
    stripe_mock: str, tmp_path: Path
) -> None:
    config = Config.from_env(
        {
            "SUBLEDGER_DATA_DIR": str(tmp_path),
            "SUBLEDGER_GATEWAY": "stripe",
            "SUBLEDGER_STRIPE_API_KEY": "sk_test_123",
            "SUBLEDGER_STRIPE_API_BASE": stripe_mock,
        }
    )
    with Runtime(config) as rt:
        at = datetime(2024, 1, 1, tzinfo=UTC)
        common = {"actor": "t", "source": "pytest"}
        rt.ledger.execute(
            c.DefinePlan(command_id="p", at=at, plan_id="basic", name="Basic", currency="USD",
                         pricing={"model": "flat", "amount": 1000, "tiers": []}, **common)
        )  # fmt: skip
        rt.ledger.execute(
            c.RegisterCustomer(command_id="r", at=at, customer_id="ada", name="Ada",
                               email="a@example.com", payment_token="pm_card_visa", **common)
        )  # fmt: skip
        rt.ledger.execute(
            c.Subscribe(command_id="s", at=at, customer_id="ada", plan_id="basic",
                        subscription_id="sub", **common)
        )  # fmt: skip
        rt.catch_up()
        rows = rt.db.query("SELECT attempt, outcome, reference FROM payments")
        assert len(rows) == 1 and rows[0]["attempt"] == 1
        intent = Journal(sqlite_path=str(tmp_path / "stripe.sqlite")).get("INV-000001:1")
        assert rows[0]["reference"] == intent["intent"]
