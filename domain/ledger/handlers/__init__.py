"""The command handlers, one module per family; importing this registers every one."""

from __future__ import annotations

from domain.ledger.handlers import catalog, clock, customers, payments, subscriptions
from domain.ledger.registry import HANDLERS, handler_for

__all__ = [
    "HANDLERS",
    "catalog",
    "clock",
    "customers",
    "handler_for",
    "payments",
    "subscriptions",
]
