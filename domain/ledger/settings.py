"""The Ledger's settings and the result of one command in a batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from domain import commands as c
from domain.dunning import DunningSchedule
from domain.errors import LedgerError
from domain.notifications.delivery import DeliveryPolicy
from domain.subscription.schedule import ReminderLeads


@dataclass(frozen=True)
class LedgerSettings:
    """How due work runs: the dunning schedule, reminders, and the due-work chunk size;
    how notifications are retried."""

    dunning: DunningSchedule = field(default_factory=DunningSchedule)
    reminders: ReminderLeads = field(default_factory=ReminderLeads)
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    chunk_size: int = 500  # aggregates held before due work commits what it has done


@dataclass(frozen=True)
class Result:
    """One command's outcome in a batch, or the rule it broke (then it recorded nothing)."""

    command: c.Command
    outcome: dict[str, Any] | None = None
    error: LedgerError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
