"""Deterministic aggregate ids from the external ids upstream systems use."""

from __future__ import annotations

from functools import lru_cache
from uuid import UUID, uuid5

NAMESPACE = UUID("6f1d2c4e-5b1a-4c1e-9a53-2f7d5e0b9c11")


@lru_cache(maxsize=65_536)  # a pure function, asked for the same ids again and again
def _uuid(kind: str, key: str) -> UUID:
    return uuid5(NAMESPACE, f"{kind}:{key}")


def plan_uuid(plan_id: str) -> UUID:
    return _uuid("plan", plan_id)


def customer_uuid(customer_id: str) -> UUID:
    return _uuid("customer", customer_id)


def subscription_uuid(subscription_id: str) -> UUID:
    return _uuid("subscription", subscription_id)


def coupon_uuid(code: str) -> UUID:
    return _uuid("coupon", code)


def tax_rate_uuid(country: str) -> UUID:
    return _uuid("tax-rate", country)


def receipt_uuid(command_id: str) -> UUID:
    return _uuid("command", command_id)


INVOICE_SEQUENCE_ID = _uuid("sequence", "invoices")
CREDIT_NOTE_SEQUENCE_ID = _uuid("sequence", "credit-notes")
CLOCK_ID = _uuid("clock", "ledger")
AUDIT_CHAIN_ID = _uuid("audit", "chain")


_HEX_AS_LETTERS = str.maketrans("0123456789", "ghijklmnop")


def in_letters(prefix: str, key: UUID, length: int = 32) -> str:
    """`prefix` and the first `length` hex digits of `key`, 0-9 spelled g-p: letters only.

    For the ids the ledger makes itself (messages, webhook endpoints and deliveries): every
    command refuses a field that holds a card number, and hex or base-32 digits can line up
    into one (a 13-19 digit run passing Luhn) — an id without a digit never does.
    """
    return prefix + key.hex[:length].translate(_HEX_AS_LETTERS)
