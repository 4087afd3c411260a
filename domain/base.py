"""What every ledger aggregate and event shares: metadata and time as an input."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from eventsourcing.domain import Aggregate

from domain.errors import InvalidInput, TimeWentBackwards


class LedgerAggregate(Aggregate):
    """An aggregate whose event timestamps are the commands' effective times.

    Nothing here reads the clock: `at` comes with every command, and an event may not
    take effect before the aggregate's last one.
    """

    class Event(Aggregate.Event):
        meta: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            """Most events only record a fact; those that change state override this."""

    def emit(self, event_class: type[Aggregate.Event], at: datetime, meta: dict, **fields: Any):
        self.check_time(at)
        self.trigger_event(event_class, timestamp=at, meta=meta, **fields)

    def discard_unrecorded(self) -> bool:
        """After a unit of work that will not commit: undo what changed in memory only and
        say whether this object is again the stored state (True), or has events that were
        never recorded and must be loaded afresh (False). State changes through events, so
        an aggregate without pending events is the stored one; those that keep a tally in
        memory until the transaction is written (the clock, the invoice sequence) reset it.
        """
        return not self.pending_events

    def check_exists_at(self, at: datetime, what: str) -> None:
        """Nothing may refer to a record at a time before the record began."""
        if at < self.created_on:
            raise TimeWentBackwards(f"{what} only exists from {iso(self.created_on)}")

    def check_time(self, at: datetime) -> None:
        check_aware(at)
        if at < self.modified_on:
            raise TimeWentBackwards(
                f"effective time {iso(at)} is before this record's last change at "
                f"{iso(self.modified_on)}"
            )


def check_aware(at: datetime) -> None:
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise InvalidInput("times must be timezone-aware (UTC)")


def iso(at: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, the one spelling of time the ledger prints."""
    if at is None:
        return None
    text = at.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")
