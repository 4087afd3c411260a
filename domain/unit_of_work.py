"""The unit of work and the small types the Ledger and its parts share."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from domain import commands as c
from domain.base import LedgerAggregate
from domain.dunning import DunningSchedule
from domain.errors import AlreadyExists, LedgerError

A = TypeVar("A", bound=LedgerAggregate)


class Schedule(Protocol):
    """Where the ledger finds candidates for due work: a hint; each aggregate decides."""

    def due_subscriptions(self, up_to: datetime) -> Iterable[UUID]: ...

    def subscriptions_on_plan(self, plan_id: str) -> Iterable[UUID]: ...


@dataclass(frozen=True)
class LedgerSettings:
    dunning: DunningSchedule = field(default_factory=DunningSchedule)
    reminder_days: int = 7
    remind_all_plans: bool = False
    chunk_size: int = 500


@dataclass(frozen=True)
class Result:
    command: c.Command
    outcome: dict[str, Any] | None = None
    error: LedgerError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class UnitOfWork:
    """The aggregates one transaction touches, in the order it first touched them."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.aggregates: dict[UUID, LedgerAggregate] = {}
        self.personal: dict[str, dict[str, Any] | None] = {}
        self.sequence_meta: dict[str, Any] = {}
        self.clock_meta: dict[str, Any] = {}  # the command that moved the clock last
        self.due: dict[str, int] = {}  # what the current command's clock move ran

    def find(self, cls: type[A], id: UUID) -> A | None:
        agg = self.aggregates.get(id)
        if agg is None:
            try:
                agg = self.app.repository.get(id)
            except AggregateNotFoundError:
                return None
            self.aggregates[id] = agg
        if not isinstance(agg, cls):
            return None
        return agg

    def get(self, cls: type[A], id: UUID, error: LedgerError) -> A:
        agg = self.find(cls, id)
        if agg is None:
            raise error
        return agg

    def add(self, agg: A) -> A:
        if agg.id in self.aggregates or self.find(type(agg), agg.id) is not None:
            raise AlreadyExists("already exists")
        self.aggregates[agg.id] = agg
        return agg

    def events(self) -> list[Any]:
        order = {agg_id: i for i, agg_id in enumerate(self.aggregates)}
        events = [e for agg in self.aggregates.values() for e in agg.collect_events()]
        events.sort(key=lambda e: (e.timestamp, order[e.originator_id], e.originator_version))
        return events

    @property
    def size(self) -> int:
        return len(self.aggregates)
