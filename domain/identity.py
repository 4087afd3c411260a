"""Deterministic aggregate ids from the external ids upstream systems use."""

from __future__ import annotations

from uuid import UUID, uuid5

NAMESPACE = UUID("6f1d2c4e-5b1a-4c1e-9a53-2f7d5e0b9c11")


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
CLOCK_ID = _uuid("clock", "ledger")
