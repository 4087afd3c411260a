"""Gapless credit-note numbers, taken in the transaction that issues the credit note.

The credit book also records, once, that the credit an earlier version kept on
subscriptions was moved to their customers (`StrandedCreditMoved`): from then on every
credit balance is a customer's (domain/ledger/billing.py, `move_stranded_credit`).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from domain.base import LedgerAggregate


class CreditNoteSequence(LedgerAggregate):
    """Credit notes are numbered CN-000001, CN-000002, ... with no gaps and no doubles.

    A number is taken and recorded (`NumbersAllocated`) in the transaction that issues the
    credit note; if that transaction fails, nothing was taken, so a retry reuses it.
    """

    class Started(LedgerAggregate.Created, LedgerAggregate.Event):
        def apply(self, seq: CreditNoteSequence) -> None:
            seq.last = 0
            seq.credit_moved = False

    class NumbersAllocated(LedgerAggregate.Event):
        first: int
        last: int

        def apply(self, seq: CreditNoteSequence) -> None:
            seq.last = self.last

    class StrandedCreditMoved(LedgerAggregate.Event):
        """Every subscription's credit (kept there before 0.3) now belongs to its customer."""

        subscriptions: list[str]  # the subscriptions whose credit moved (none: nothing held)
        amount: int  # the sum moved, all currencies together (each move says its currency)

        def apply(self, seq: CreditNoteSequence) -> None:
            seq.credit_moved = True

    if TYPE_CHECKING:
        last: int
        credit_moved: bool

    @classmethod
    def start(cls, *, id: UUID, at: datetime, meta: dict) -> CreditNoteSequence:
        return cls._create(cls.Started, id=id, timestamp=at, meta=meta)

    def take(self, at: datetime, meta: dict) -> str:
        """The next number, recorded now, for a credit note issued at `at`."""
        number = self.last + 1
        self.emit(self.NumbersAllocated, self.book_time(at), meta, first=number, last=number)
        return format_credit_note_number(number)

    def record_credit_moved(
        self, subscriptions: list[str], amount: int, at: datetime, meta: dict
    ) -> None:
        self.emit(
            self.StrandedCreditMoved,
            self.book_time(at),
            meta,
            subscriptions=sorted(subscriptions),
            amount=amount,
        )

    def book_time(self, at: datetime) -> datetime:
        """Never before the book's last entry (overdue work may be done at an earlier time)."""
        return max(at, self.modified_on)


def format_credit_note_number(n: int) -> str:
    """CN-000001: zero-padded, so numbers sort as text in every read model."""
    return f"CN-{n:06d}"
