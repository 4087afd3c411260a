"""Gapless invoice numbers, taken in the transaction that issues the invoices."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from domain.base import LedgerAggregate
from domain.topics import register_moved


@register_moved
class InvoiceSequence(LedgerAggregate):
    """Gapless invoice numbers: numbers are taken in the transaction that uses them.

    A batch takes several numbers and records one `NumbersAllocated`; if the transaction
    fails, nothing was taken, so the retry reuses them — no gaps, no doubles.
    """

    class Started(LedgerAggregate.Created, LedgerAggregate.Event):
        def apply(self, seq: InvoiceSequence) -> None:
            seq.last = 0
            seq.taken = 0
            seq.taken_at = self.timestamp

    class NumbersAllocated(LedgerAggregate.Event):
        first: int
        last: int

        def apply(self, seq: InvoiceSequence) -> None:
            seq.last = self.last
            seq.taken = self.last
            seq.taken_at = self.timestamp

    if TYPE_CHECKING:
        last: int
        taken: int
        taken_at: datetime

    @classmethod
    def start(cls, *, id: UUID, at: datetime, meta: dict) -> InvoiceSequence:
        return cls._create(cls.Started, id=id, timestamp=at, meta=meta)

    def take(self, at: datetime) -> str:
        """The next number, for an invoice issued at `at` (never before the last one's)."""
        self.taken += 1
        self.taken_at = max(self.taken_at, at)
        return format_invoice_number(self.taken)

    def discard_unrecorded(self) -> bool:
        if self.pending_events:
            return False
        self.taken, self.taken_at = self.last, self.modified_on  # as the last event left them
        return True

    def record_allocations(self, meta: dict) -> None:
        """Record the numbers taken in this transaction, as of the last one's issue time."""
        if self.taken > self.last:
            at = max(self.taken_at, self.modified_on)
            self.emit(self.NumbersAllocated, at, meta, first=self.last + 1, last=self.taken)


def format_invoice_number(n: int) -> str:
    """INV-000001: zero-padded, so numbers sort as text in every read model."""
    return f"INV-{n:06d}"
