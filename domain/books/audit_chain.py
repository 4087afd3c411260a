"""The record of `audit seal`: a store written before the chain existed was chained."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from domain.base import LedgerAggregate


class AuditChain(LedgerAggregate):
    """Once per store: who sealed it and when, and how many events it held before this one.

    `audit seal` records this event first and then computes the chain from the store's first
    event, this one included, so the record of the seal is itself under the chain; a seal
    interrupted between the two finishes when run again.
    """

    class Sealed(LedgerAggregate.Created, LedgerAggregate.Event):
        events_before: int

        def apply(self, record: AuditChain) -> None:
            record.events_before = self.events_before

    if TYPE_CHECKING:
        events_before: int

    @classmethod
    def seal(cls, *, id: UUID, events_before: int, at: datetime, meta: dict) -> AuditChain:
        return cls._create(cls.Sealed, id=id, timestamp=at, meta=meta, events_before=events_before)
