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


class GatewayUnavailable(Exception):
    """The gateway could not answer (a timeout, a 5xx): ask again later with the same key.

    Never a decline: nothing is recorded for it, the request stays pending and is retried.
    """


@dataclass(frozen=True, slots=True)
class ChargeResult:
    """A gateway's answer to a charge: its reference, and the decline code and message if so."""

    succeeded: bool
    reference: str
    code: str | None = None  # e.g. card_declined, insufficient_funds, expired_card
    message: str | None = None  # the gateway's words for the decline


@dataclass(frozen=True, slots=True)
class RefundResult:
    """A gateway's answer to a refund: its reference, and why it failed if so."""

    succeeded: bool
    reference: str
    code: str | None = None
    message: str | None = None


class PaymentGateway(Protocol):
    """Charges and refunds; the idempotency key makes a repeated call return the first answer.

    Both raise GatewayUnavailable when the gateway gave no answer (retry with the same key).
    """

    def charge(
        self, *, token: str, amount: int, currency: str, idempotency_key: str
    ) -> ChargeResult: ...

    def refund(
        self, *, charge_reference: str, amount: int, currency: str, idempotency_key: str
    ) -> RefundResult: ...


@dataclass(frozen=True, slots=True)
class Settled:
    """What an in-process payments worker did after a commit: outcomes it fed back."""

    subscriptions: tuple[UUID, ...] = ()  # whose charges it settled
    payments_failed: int = 0
    churned: int = 0


class AfterCommit(Protocol):
    """Embedded: called after each commit to settle what it asked for (charges, refunds)."""

    def __call__(self) -> Settled: ...


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
