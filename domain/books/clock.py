"""The ledger clock: the book is kept in time order."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from domain.base import LedgerAggregate
from domain.topics import register_moved


@register_moved
class LedgerClock(LedgerAggregate):
    """The ledger's own notion of now: the latest effective time it has run up to.

    The book is kept in time order: a command takes effect no earlier than the clock, and a
    command dated later first moves the clock there, running whatever fell due on the way.
    Within one transaction the clock moves in memory (`now`) and one `Advanced` is recorded
    when the transaction is written (`record_advance`), as the invoice sequence does.
    """

    class Started(LedgerAggregate.Created, LedgerAggregate.Event):
        def apply(self, clock: LedgerClock) -> None:
            clock.now = self.timestamp

    class Advanced(LedgerAggregate.Event):
        def apply(self, clock: LedgerClock) -> None:
            clock.now = self.timestamp

    if TYPE_CHECKING:
        now: datetime

    @classmethod
    def start(cls, *, id: UUID, at: datetime, meta: dict) -> LedgerClock:
        return cls._create(cls.Started, id=id, timestamp=at, meta=meta)

    def move_to(self, at: datetime) -> None:
        """Move the clock forward in this transaction; recorded by `record_advance`."""
        if at > self.now:
            self.now = at

    def discard_unrecorded(self) -> bool:
        if self.pending_events:
            return False
        self.now = self.modified_on  # an Advanced (or Started) set both
        return True

    def record_advance(self, meta: dict) -> None:
        if self.now > self.modified_on:
            self.emit(self.Advanced, self.now, meta)
