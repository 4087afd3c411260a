"""The subscription aggregate, split by job (see aggregate.py's docstring for the map)."""

from __future__ import annotations

from domain.subscription.aggregate import Subscription
from domain.subscription.status import LIVE, PAYING, Due, DueKind, OpenInvoice, Status

__all__ = ["LIVE", "PAYING", "Due", "DueKind", "OpenInvoice", "Status", "Subscription"]
