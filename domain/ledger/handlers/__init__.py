"""The command handlers, one module per family; importing this registers every one."""

from __future__ import annotations

from domain.ledger.handlers import (
    catalog,
    clock,
    credit,
    customers,
    notifications,
    payments,
    subscriptions,
    webhooks,
)
from domain.ledger.registry import HANDLERS, handler_for

__all__ = [
    "HANDLERS",
    "catalog",
    "clock",
    "credit",
    "customers",
    "handler_for",
    "notifications",
    "payments",
    "subscriptions",
    "webhooks",
]
