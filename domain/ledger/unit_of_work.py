"""The unit of work: the aggregates one transaction touches, and what it learned on the way."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from domain.base import LedgerAggregate
from domain.errors import AlreadyExists, LedgerError

if TYPE_CHECKING:
    from eventsourcing.application import Repository

A = TypeVar("A", bound=LedgerAggregate)


class UnitOfWork:
    """The aggregates one transaction touches, in the order it first touched them."""

    def __init__(self, repository: Repository) -> None:
        self.repository = repository
        self.aggregates: dict[UUID, LedgerAggregate] = {}
        # read ahead for this batch in one query (Ledger.preload): current as of then, so
        # not asked of the store again; a conflicting write still fails the flush
        self.preloaded: dict[UUID, LedgerAggregate] = {}
        self.absent: set[UUID] = set()  # looked for then and not stored
        self.personal: dict[str, dict[str, Any] | None] = {}  # decrypted once per transaction
        self.sequence_meta: dict[str, Any] = {}  # the first invoice's command, for the sequence
        self.clock_meta: dict[str, Any] = {}  # the command that moved the clock last
        self.due: dict[str, int] = {}  # what the current command's clock move ran
        # each subscription's next due work at the version it was worked out at: a batch
        # asks again at every command's clock move, mostly of subscriptions unchanged since
        self.next_due: dict[UUID, tuple[int, Any]] = {}
        # what a clock advance's due work did and committed, by command id: a batch redone
        # after a refusal shares it, so the advance still reports what it did
        self.committed_due: dict[str, dict[str, int]] = {}

    def find(self, cls: type[A], id: UUID) -> A | None:
        agg = self.aggregates.get(id)
        if agg is None:
            if id in self.absent:
                return None
            agg = self.preloaded.pop(id, None)
            if agg is None:
                try:
                    agg = self.repository.get(id)
                except AggregateNotFoundError:
                    self.absent.add(id)  # a tax rate never set: not asked again this batch
                    return None
            self.aggregates[id] = agg
        if not isinstance(agg, cls):
            return None
        return agg

    def get(self, cls: type[A], id: UUID, error: Callable[[], LedgerError]) -> A:
        """The aggregate, or `error()` raised (made only then: an error masks card numbers
        in its message, which cost more than the lookup itself)."""
        agg = self.find(cls, id)
        if agg is None:
            raise error()
        return agg

    def add(self, agg: A) -> A:
        """A new aggregate; AlreadyExists if this unit of work or the store has its id."""
        if agg.id in self.aggregates or self.find(type(agg), agg.id) is not None:
            raise AlreadyExists("already exists")
        self.aggregates[agg.id] = agg
        self.absent.discard(agg.id)
        return agg

    def start(self, agg: A) -> A:
        """A new aggregate whose id this unit of work has just looked up and not found.

        The store is not asked again: another writer may start the same aggregate in
        between (the invoice sequence, a command's receipt), and then this unit of work's
        flush conflicts and the batch is redone from the store, finding theirs. Asking
        again would turn that race into a rule broken ("already exists") and refuse a
        command that should have gone through. Found here by a later lookup, it is that
        race seen early: a conflict, and the batch is redone.
        """
        if agg.id in self.aggregates:
            raise IntegrityError(f"{type(agg).__name__} {agg.id} was started meanwhile")
        self.aggregates[agg.id] = agg
        self.absent.discard(agg.id)
        return agg

    def forget_read_ahead(self) -> None:
        """Drop what `Ledger.preload` read: others (the payments worker) wrote since."""
        self.preloaded.clear()
        self.absent.clear()

    def keep_only(self, *classes: type[LedgerAggregate]) -> None:
        """Let go of every aggregate but those of `classes` (after a chunk was committed)."""
        self.aggregates = {k: v for k, v in self.aggregates.items() if isinstance(v, classes)}

    def events(self) -> list[Any]:
        """The new events of every aggregate, in time order (ties: first touched first)."""
        order = {agg_id: i for i, agg_id in enumerate(self.aggregates)}
        events = [e for agg in self.aggregates.values() for e in agg.collect_events()]
        events.sort(key=lambda e: (e.timestamp, order[e.originator_id], e.originator_version))
        return events

    @property
    def size(self) -> int:
        return len(self.aggregates)
