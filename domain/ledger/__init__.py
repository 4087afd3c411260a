"""The Ledger application (service.py), its command handlers and its due work."""

from __future__ import annotations

from domain.ledger.service import Ledger
from domain.ledger.settings import LedgerSettings, Result

__all__ = ["Ledger", "LedgerSettings", "Result"]
