"""The subscription's value types: its status, an open invoice, and a piece of due work.

`Status` members equal their strings, so events keep storing plain "active" and old events
load unchanged; the named sets say which statuses are live (can change, renew, be charged)
and paying (bring MRR). Read models and the CLI take their lists from here too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum


class Status(StrEnum):
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    PAUSED = "paused"
    CANCELED = "canceled"


LIVE = frozenset({Status.TRIALING, Status.ACTIVE, Status.PAST_DUE})  # may still change
PAYING = frozenset({Status.ACTIVE, Status.PAST_DUE})  # billed each period, counted in MRR


@dataclass(frozen=True, slots=True)
class OpenInvoice:
    """An invoice with money still due, and how collecting it has gone so far."""

    amount_due: int
    failures: int = 0
    first_failed_at: datetime | None = None
    next_retry_at: datetime | None = None
    charging: int | None = None  # the attempt whose charge is pending at the gateway

    @property
    def next_attempt(self) -> int:
        return self.failures + 1

    def requested(self, attempt: int) -> OpenInvoice:
        """This invoice while charge `attempt` is pending: no retry is due until its outcome."""
        return replace(self, charging=attempt, next_retry_at=None)

    def failed(self, attempt: int, at: datetime, next_retry_at: datetime | None) -> OpenInvoice:
        """This invoice after charge `attempt` failed at `at` (dunning counts from the first)."""
        return replace(
            self,
            failures=attempt,
            first_failed_at=self.first_failed_at or at,
            next_retry_at=next_retry_at,
            charging=None,
        )


@dataclass(frozen=True, slots=True)
class PendingCharge:
    """A charge the ledger asked for and has no outcome of yet (kept past a write-off)."""

    attempt: int
    amount: int


class DueKind(StrEnum):
    """What can fall due on a subscription, in the order it runs when due at the same time."""

    RETRY = "retry"
    REMIND = "remind"
    TRIAL_ENDING = "trial_ending"  # the notice a few days before a trial ends
    TRIAL_END = "trial_end"
    RENEW = "renew"

    @property
    def priority(self) -> int:
        return _PRIORITY[self]


_PRIORITY = {
    DueKind.RETRY: 0,
    DueKind.REMIND: 1,
    DueKind.TRIAL_ENDING: 2,
    DueKind.TRIAL_END: 3,
    DueKind.RENEW: 4,
}


@dataclass(frozen=True, slots=True)
class Due:
    """The next thing due on a subscription: when, what, and which invoice for a retry.

    Ordered by time, then kind (a retry before a reminder before a renewal), then invoice
    number, so a heap of them runs due work in one deterministic order.
    """

    at: datetime
    kind: DueKind
    invoice: str | None = None

    def _key(self) -> tuple[datetime, int, str]:
        return (self.at, self.kind.priority, self.invoice or "")

    def __lt__(self, other: Due) -> bool:
        return self._key() < other._key()
