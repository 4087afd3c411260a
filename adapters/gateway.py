"""A deterministic sandbox payment gateway that speaks Stripe's test tokens.

It implements the domain's PaymentGateway port; bootstrap.py hands it to the Ledger.
"""

from __future__ import annotations

import hashlib

from domain.ports import ChargeResult

DECLINES = {
    "tok_chargeDeclined": "card_declined",
    "tok_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "tok_chargeDeclinedExpiredCard": "expired_card",
    "tok_chargeDeclinedProcessingError": "processing_error",
}


class SandboxGateway:
    """Deterministic: the outcome depends only on the token, the reference on the key.

    `tok_visa` (and any other token) succeeds; the `tok_chargeDeclined*` family declines
    with its reason, every time, as Stripe's test tokens do. A repeated idempotency key
    returns the very same result, as a real gateway does.
    """

    def __init__(self) -> None:
        self.calls: dict[str, ChargeResult] = {}

    def charge(
        self, *, token: str, amount: int, currency: str, idempotency_key: str
    ) -> ChargeResult:
        if idempotency_key in self.calls:
            return self.calls[idempotency_key]
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]
        reason = DECLINES.get(token)
        result = (
            ChargeResult(False, f"ch_failed_{digest}", reason)
            if reason
            else ChargeResult(True, f"ch_{digest}")
        )
        self.calls[idempotency_key] = result
        return result
