"""What the domain needs from the world, as Protocols: adapters/ implements them.

The domain never builds one of these itself; bootstrap.py chooses the adapters and hands
them to the Ledger, so nothing here knows SQLite, PostgreSQL or a payment provider.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID


@dataclass(frozen=True, slots=True)
class ChargeResult:
    """A gateway's answer: the reference of the charge it made, and why it declined if so."""

    succeeded: bool
    reference: str
    reason: str | None = None


class PaymentGateway(Protocol):
    """Charges a tokenised payment method; the idempotency key makes a retried call safe."""

    def charge(
        self, *, token: str, amount: int, currency: str, idempotency_key: str
    ) -> ChargeResult: ...


class KeyStore(Protocol):
    """Per-customer encryption keys, kept apart from the events so erasure can destroy one."""

    def get(self, customer_id: str) -> str | None: ...

    def put_new(self, customer_id: str, key: str) -> str:
        """Store `key` unless the customer already has one; return the key in force."""
        ...

    def delete(self, customer_id: str) -> bool: ...


class Schedule(Protocol):
    """Where the ledger finds candidates for due work: a hint; each aggregate decides."""

    def due_subscriptions(self, up_to: datetime) -> Iterable[UUID]: ...

    def subscriptions_on_plan(self, plan_id: str) -> Iterable[UUID]: ...
