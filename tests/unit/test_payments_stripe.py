"""The Stripe adapter's mapping of Stripe's documented answers (tests/fixtures/stripe/).

stripe-mock (tests/integration/test_payments_stripe_mock.py) checks the shape of every
request and response but never declines; here the official `stripe` library is handed the
bodies Stripe documents, through its own HTTP-client hook, and builds its own exceptions
from them, so what is checked is the adapter's reading of what Stripe really sends.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import stripe

from adapters.gateway import DECLINES
from adapters.stripe_gateway import Journal, StripeGateway, decline
from domain.ports import ChargeResult, GatewayUnavailable, RefundResult

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "stripe"
KEY = "INV-000001:1"


def body(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


class Recorded(stripe.HTTPClient):
    """Answers each request with the next recorded (status, body); notes what was sent."""

    name = "recorded"

    def __init__(self, answers: list[tuple[int, str]]) -> None:
        super().__init__()
        self.answers = list(answers)
        self.sent: list[tuple[str, str, str | None]] = []  # method, path, idempotency key

    def request(self, method: str, url: str, headers: Any, post_data: Any = None, **_: Any):
        path = url.split("://", 1)[1].split("/", 1)[1].split("?")[0]
        self.sent.append((method.upper(), f"/{path}", (headers or {}).get("Idempotency-Key")))
        status, name = self.answers.pop(0)
        return json.dumps(body(name)), status, {"request-id": "req_test"}

    def close(self) -> None:
        pass


def gateway(answers: list[tuple[int, str]], journal: Journal | None = None) -> StripeGateway:
    client = stripe.StripeClient(
        "sk_test_123", http_client=Recorded(answers), max_network_retries=0
    )
    return StripeGateway("sk_test_123", journal=journal or Journal(), client=client)


def sent(g: StripeGateway) -> list[tuple[str, str, str | None]]:
    return g.client._requestor._client.sent  # type: ignore[attr-defined]


def charge(g: StripeGateway) -> ChargeResult:
    return g.charge(token="pm_card_visa", amount=1000, currency="USD", idempotency_key=KEY)


@pytest.mark.parametrize(
    ("fixture", "code", "message"),
    [
        ("card_declined", "card_declined", "Your card was declined."),
        ("insufficient_funds", "insufficient_funds", "Your card has insufficient funds."),
        ("expired_card", "expired_card", "Your card has expired."),
        (
            "processing_error",
            "processing_error",
            "An error occurred while processing your card. Try again in a little bit.",
        ),
        (
            "authentication_required",
            "authentication_required",
            "Your card was declined. This transaction requires authentication.",
        ),
    ],
)
def test_a_card_error_on_confirmation_is_a_decline_with_stripes_code_and_message(
    fixture: str, code: str, message: str
) -> None:
    g = gateway([(200, "payment_intent_requires_confirmation"), (402, fixture)])
    result = charge(g)
    pi = body(fixture)["error"]["payment_intent"]["id"]
    assert result == ChargeResult(False, pi, code, message)
    assert sent(g) == [
        ("POST", "/v1/payment_intents", f"{KEY}:create"),
        ("POST", "/v1/payment_intents/pi_3MtwBwLkdIwHu7ix28a3tqPa/confirm", f"{KEY}:confirm"),
    ]


def test_the_sandbox_declines_with_the_codes_and_messages_stripe_sends() -> None:
    for token, fixture in [
        ("tok_chargeDeclined", "card_declined"),
        ("tok_chargeDeclinedInsufficientFunds", "insufficient_funds"),
        ("tok_chargeDeclinedExpiredCard", "expired_card"),
        ("tok_chargeDeclinedProcessingError", "processing_error"),
    ]:
        assert DECLINES[token] == decline(body(fixture)["error"]), token


@pytest.mark.parametrize(
    ("status", "fixture"),
    [(500, "api_error_500"), (429, "rate_limit_429"), (409, "idempotency_key_in_use_409")],
)
def test_a_5xx_429_or_key_in_use_is_unavailable_and_the_charge_resumes_by_intent_id(
    status: int, fixture: str
) -> None:
    journal = Journal()
    g = gateway([(200, "payment_intent_requires_confirmation"), (status, fixture)], journal)
    with pytest.raises(GatewayUnavailable):
        charge(g)
    intent = "pi_3MtwBwLkdIwHu7ix28a3tqPa"
    assert journal.get(KEY) == {"intent": intent, "confirming": True}  # before confirming

    # asked again (say, days later: Stripe forgot the keys): by id, never a new intent
    again = gateway([(200, "payment_intent_succeeded")], journal)
    assert charge(again) == ChargeResult(True, intent)
    assert sent(again) == [("GET", f"/v1/payment_intents/{intent}", None)]


def test_an_intent_confirmed_before_is_read_back_not_confirmed_again() -> None:
    journal = Journal()
    journal.put(KEY, intent="pi_3MtwBwLkdIwHu7ix28a3tqPa", confirming=True)
    g = gateway(
        [
            (200, "payment_intent_requires_confirmation"),  # the confirmation never arrived
            (200, "payment_intent_succeeded"),
        ],
        journal,
    )
    assert charge(g) == ChargeResult(True, "pi_3MtwBwLkdIwHu7ix28a3tqPa")
    assert [m for m, _p, _k in sent(g)] == ["GET", "POST"]
    assert sent(g)[1][2] == f"{KEY}:confirm"


def test_an_intent_that_already_succeeded_when_confirmed_again_is_a_success() -> None:
    journal = Journal()
    journal.put(KEY, intent="pi_3MtwBwLkdIwHu7ix28a3tqPa")
    g = gateway(
        [(400, "payment_intent_unexpected_state"), (200, "payment_intent_succeeded")], journal
    )
    assert charge(g) == ChargeResult(True, "pi_3MtwBwLkdIwHu7ix28a3tqPa")


def test_no_answer_at_all_is_unavailable() -> None:
    g = StripeGateway(
        "sk_test_123", api_base="http://127.0.0.1:9", journal=Journal(), network_retries=0
    )
    with pytest.raises(GatewayUnavailable):
        charge(g)


def test_refunds_carry_the_key_and_map_stripes_refusals() -> None:
    g = gateway([(200, "refund_succeeded")])
    result = g.refund(
        charge_reference="pi_3MtwBwLkdIwHu7ix28a3tqPa",
        amount=400,
        currency="USD",
        idempotency_key="CN-000001:refund",
    )
    assert result == RefundResult(True, "re_1Nispe2eZvKYlo2Cd31jOCgZ")
    assert sent(g) == [("POST", "/v1/refunds", "CN-000001:refund")]

    refused = gateway([(400, "charge_already_refunded")])
    result = refused.refund(
        charge_reference="ch_3MmlLrLkdIwHu7ix0snN0B15",
        amount=400,
        currency="USD",
        idempotency_key="CN-000002:refund",
    )
    assert result == RefundResult(
        False,
        "",
        "charge_already_refunded",
        "Charge ch_3MmlLrLkdIwHu7ix0snN0B15 has already been refunded.",
    )
