"""The ledger's due-work hint from a billing model fed in process from the event store.

The Ledger asks its schedule which subscriptions may have work due up to T; the answer
comes from a BillingProjection that LogFeeder keeps current straight from the notification
log, so it never waits on Kafka lag. bootstrap.py picks one: the shared read model's in
embedded mode, a private one (LocalSchedule) when Kafka projectors own the read models.
"""

from __future__ import annotations

import fcntl
from datetime import datetime
from typing import IO, Any
from urllib.parse import urlparse
from uuid import UUID

from consumers.embedded import LogFeeder
from projections.billing import BillingProjection, BillingSchedule
from projections.db import ReadDB


class FedSchedule:
    """The ledger's due-work hint from a billing model fed in process, whole even when stuck.

    Should that model be stuck on an event (a projection bug), every subscription with an
    event at or after that one has a stale row: those are added to the candidates, so no
    due work is silently skipped and no command refused. A superset is safe: the schedule
    is a hint and each aggregate decides what is due.
    """

    def __init__(self, schedule: BillingSchedule, feeder: LogFeeder, billing: str) -> None:
        self.schedule = schedule
        self.schedule.catch_up = None  # done here, before the stuck check
        self.feeder = feeder
        self.billing = billing

    def _unseen(self) -> list[UUID]:
        """Subscriptions the billing model has not seen every event of (none if not stuck)."""
        self.feeder.catch_up()
        fault = self.feeder.faults().get(self.billing)
        if fault is None:
            return []
        return self.feeder.aggregates_since(int(fault["position"]) - 1, "Subscription")

    def due_subscriptions(self, up_to: datetime) -> list[UUID]:
        unseen = self._unseen()
        return list(dict.fromkeys([*self.schedule.due_subscriptions(up_to), *unseen]))

    def subscriptions_on_plan(self, plan_id: str) -> list[UUID]:
        unseen = self._unseen()
        return list(dict.fromkeys([*self.schedule.subscriptions_on_plan(plan_id), *unseen]))


class LocalSchedule:
    """Due work found in a private billing model fed in process from the event store.

    In Kafka mode the shared read models are the Kafka projectors' and may lag; the ledger's
    schedule must not. One process owns the SQLite file (flock); another keeps its copy in
    memory, rebuilt from the event store when first asked. `in_memory`: in memory anyway
    (embedded, while another process feeds the shared read models: `Runtime.feeding_apart`).
    """

    def __init__(self, config: Any, ledger: Any, *, in_memory: bool = False) -> None:
        self._lock: IO[str] | None = None
        url = "sqlite:///:memory:"
        if not in_memory:
            config.data_dir.mkdir(parents=True, exist_ok=True)
            dbname = urlparse(config.event_store or "").path.lstrip("/") or "events"
            path = config.data_dir / f"schedule-{dbname}.sqlite"
            self._lock = open(f"{path}.lock", "w")  # noqa: SIM115 - held for the process's life
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                url = f"sqlite:///{path}"
            except BlockingIOError:
                pass  # another process owns the file: this copy is in memory
        self.db = ReadDB(url)
        projection = BillingProjection()
        projection.create(self.db)
        self.feeder = LogFeeder(ledger, self.db, [projection])
        billing = BillingSchedule(self.db, leads=config.settings().reminders)
        self.schedule = FedSchedule(billing, self.feeder, projection.name)

    def close(self) -> None:
        self.db.close()
        if self._lock is not None:
            self._lock.close()
