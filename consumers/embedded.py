"""Feeds the projections straight from the event store's notification log, in process.

This is the embedded default's runner: no Kafka, the same projection classes. Each batch
of notifications and every projection's new position commit in one read-DB transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from projections.base import Projection, get_positions, set_position
from projections.db import ReadDB
from schemas.records import EventRecord, to_record

SOURCE = "log"


class LogFeeder:
    def __init__(
        self, ledger, db: ReadDB, projections: Sequence[Projection], batch_size: int = 2000
    ) -> None:
        self.ledger = ledger
        self.db = db
        self.projections = list(projections)
        self.batch_size = batch_size

    def positions(self) -> dict[str, int]:
        return {p.name: get_positions(self.db, p.name).get(SOURCE, 0) for p in self.projections}

    def head(self) -> int:
        return self.ledger.recorder.max_notification_id() or 0

    def records(self, after: int, limit: int) -> list[EventRecord]:
        notifications = self.ledger.recorder.select_notifications(
            start=after, limit=limit, inclusive_of_start=False
        )
        return [to_record(self.ledger.mapper.to_domain_event(n), n.id) for n in notifications]

    def catch_up(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Apply every notification not yet applied; returns how many were applied."""
        positions = self.positions()
        start = min(positions.values(), default=0)
        head = self.head()
        applied = 0
        while start < head:
            records = self.records(start, self.batch_size)
            if not records:
                break
            with self.db.transaction():
                for record in records:
                    for projection in self.projections:
                        if record.position > positions[projection.name]:
                            projection.apply(self.db, record)
                last = records[-1].position
                for projection in self.projections:
                    if last > positions[projection.name]:
                        set_position(self.db, projection.name, SOURCE, last)
                        positions[projection.name] = last
            applied += len(records)
            start = last
            if progress:
                progress(start, head)
        return applied

    def rebuild(
        self, projection: Projection, progress: Callable[[int, int], None] | None = None
    ) -> int:
        projection.drop(self.db)
        projection.create(self.db)
        feeder = LogFeeder(self.ledger, self.db, [projection], self.batch_size)
        return feeder.catch_up(progress)
