"""Feeds the projections straight from the event store's notification log, in process.

This is the embedded default's runner: no Kafka, the same projection classes. Each batch
of notifications and every projection's new position commit in one read-DB transaction,
which also reads the positions: processes sharing a read DB take turns (SQLite's
`BEGIN IMMEDIATE`, PostgreSQL's advisory lock) and each skips what another already applied.

A projection that raises on an event (a bug: the ledger accepted that event) is stuck
there: its rows and position stay as they were before that event, the fault is recorded
(`projection_faults`), and it is fed no more until it is rebuilt. The others go on, and
the caller — a command that is already recorded — never sees the exception.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from domain.errors import LedgerError
from domain.pci import mask_card_numbers
from projections.analytics import create_views
from projections.base import Projection, get_faults, get_positions, record_fault, set_position
from projections.db import ReadDB
from schemas.records import EventRecord, to_record

SOURCE = "log"
LOCK = "subledger.log-feeder"

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())  # the CLI says it in one `warning:` line of its own


class ProjectionStuck(LedgerError):
    """A read model stopped on an event it cannot apply; it stays there until rebuilt."""

    code = "projection_stuck"

    def __init__(self, fault: dict[str, Any], message: str | None = None) -> None:
        self.fault = fault
        super().__init__(message or describe(fault))


def describe(fault: dict[str, Any]) -> str:
    """`billing stuck at 42 (Subscription.Renewed): <reason>`: what status and warnings say."""
    return f"{fault['projection']} {stuck_at(fault)}"


def stuck_at(fault: dict[str, Any]) -> str:
    """`stuck at 42 (Subscription.Renewed): <reason>`: the `stuck` column of status."""
    return f"stuck at {fault['position']} ({fault['event']}): {fault['reason']}"


def one_line(exc: BaseException) -> str:
    """The reason as one line, card numbers masked (a message may quote the event's data)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return mask_card_numbers(text)[:500]


class LogFeeder:
    """Feeds `projections` from `ledger`'s notification log into `db`, a batch at a time."""

    def __init__(
        self, ledger: Any, db: ReadDB, projections: Sequence[Projection], batch_size: int = 2000
    ) -> None:
        self.ledger = ledger
        self.db = db
        self.projections = list(projections)
        self.batch_size = batch_size
        self.recorded: list[dict[str, Any]] = []  # the faults the last catch_up recorded

    def positions(self) -> dict[str, int]:
        return {p.name: get_positions(self.db, p.name).get(SOURCE, 0) for p in self.projections}

    def faults(self) -> dict[str, dict[str, Any]]:
        """The stuck projections among ours, by name: position, event, reason."""
        names = {p.name for p in self.projections}
        return {
            f["projection"]: f
            for f in get_faults(self.db)
            if f["source"] == SOURCE and f["projection"] in names
        }

    def require(self, name: str) -> None:
        """Raise ProjectionStuck if `name` is stuck: an answer read from it would be stale."""
        fault = self.faults().get(name)
        if fault is not None:
            raise ProjectionStuck(fault)

    def head(self) -> int:
        return self.ledger.recorder.max_notification_id() or 0

    def aggregates_since(self, position: int, aggregate_type: str) -> list[UUID]:
        """Ids of the `aggregate_type` aggregates with an event after `position`, in order.

        Read from the stored topics without decoding, so it works whatever the events hold.
        """
        found: dict[UUID, None] = {}
        prefix = f"{aggregate_type}."
        while True:
            page = self.ledger.recorder.select_notifications(
                start=position, limit=10_000, inclusive_of_start=False
            )
            for n in page:
                if n.topic.rpartition(":")[2].startswith(prefix):
                    found[n.originator_id] = None
            if len(page) < 10_000:
                return list(found)
            position = page[-1].id

    def records(self, after: int, limit: int) -> list[EventRecord]:
        notifications = self.ledger.recorder.select_notifications(
            start=after, limit=limit, inclusive_of_start=False
        )
        return [to_record(self.ledger.mapper.to_domain_event(n), n.id) for n in notifications]

    def _read(self, after: int, limit: int) -> tuple[list[EventRecord], dict[str, Any] | None]:
        """Records after `after`, up to the first one that cannot be decoded (and why)."""
        notifications = self.ledger.recorder.select_notifications(
            start=after, limit=limit, inclusive_of_start=False
        )
        records = []
        for n in notifications:
            try:
                records.append(to_record(self.ledger.mapper.to_domain_event(n), n.id))
            except Exception as exc:  # every projection stops here: none can read it
                topic = n.topic.rpartition(":")[2] or n.topic
                return records, {"position": n.id, "event": topic, "reason": one_line(exc)}
        return records, None

    def catch_up(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Apply every notification not yet applied; returns how many were fed.

        Never raises for an event a projection cannot apply (that projection is stuck and
        the fault recorded); a busy or unreachable database still raises, changing nothing.
        """
        self.recorded = []
        head = self.head()
        stuck = self.faults()
        if all(pos >= head for n, pos in self.positions().items() if n not in stuck):
            return 0  # nothing to do: no write lock taken, readers never queue here
        applied = logged = 0
        while True:
            try:
                batch = self._batch(head)
            except BaseException:
                del self.recorded[logged:]  # rolled back with the batch
                raise
            if batch is None:
                return applied
            for fault in self.recorded[logged:]:  # once they are committed
                log.warning("read model %s", describe(fault))
            logged = len(self.recorded)
            applied += batch[0]
            if progress:
                progress(batch[1], head)

    def _batch(self, head: int) -> tuple[int, int] | None:
        """Feed one batch in one transaction: (notifications read, last position) or None."""
        with self.db.transaction():
            self.db.serialise(LOCK)
            stuck = self.faults()
            positions = {n: p for n, p in self.positions().items() if n not in stuck}
            start = min(positions.values(), default=head)
            if start >= head:
                return None
            records, unreadable = self._read(start, self.batch_size)
            if not records and unreadable is None:
                return None
            for projection in self.projections:
                if projection.name in positions:
                    self._feed(projection, records, positions[projection.name], unreadable)
            last = unreadable["position"] if unreadable else records[-1].position
            return len(records), last

    def _feed(
        self,
        projection: Projection,
        records: list[EventRecord],
        position: int,
        unreadable: dict[str, Any] | None,
    ) -> None:
        """Apply `records` past `position`; on a failure, keep those before it and stop there."""
        todo = [r for r in records if r.position is not None and r.position > position]
        fault = unreadable if unreadable and unreadable["position"] > position else None
        pipelined = True  # writes sent many at a time; one by one to find a failing one
        while todo:
            done = 0
            try:
                held = projection.batch(self.db) if pipelined else nullcontext()
                with self.db.savepoint(), self.db.pipelined(pipelined), held:
                    for record in todo:
                        projection.apply(self.db, record)
                        done += 1
            except Exception as exc:
                if self.db.is_transient(exc):
                    raise  # busy or gone: no verdict on the event; the caller retries later
                if pipelined and (self.db.kind == "postgres" or done == len(todo)):
                    # a held-back write failed (PostgreSQL's pipeline, or the read model's
                    # batch end): which event's is not known; one by one, each is at its own
                    pipelined = False
                    continue
                record = todo[done]
                fault = {"position": record.position, "event": record.name}
                fault["reason"] = one_line(exc)
                todo = todo[:done]  # redo those before it, which applied fine
                continue
            last = todo[-1].position
            assert last is not None
            set_position(self.db, projection.name, SOURCE, last)
            break
        if fault is not None:
            self._stuck(projection, fault)

    def _stuck(self, projection: Projection, fault: dict[str, Any]) -> None:
        fault = {"projection": projection.name, "source": SOURCE, **fault}
        record_fault(
            self.db,
            projection.name,
            SOURCE,
            fault["position"],
            fault["event"],
            fault["reason"],
            datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        self.recorded.append(fault)

    def rebuild(
        self,
        projections: Projection | Sequence[Projection],
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Drop and refill read models from the start, in one pass over the event store,
        clearing their faults; returns how many events were fed.

        Raises ProjectionStuck if one stops on an event again; it stays stuck there (the
        others are rebuilt whole).
        """
        many = [projections] if isinstance(projections, Projection) else list(projections)
        with self.db.transaction():  # other processes never see them half dropped
            self.db.serialise(LOCK)
            for projection in many:
                projection.drop(self.db)  # and the analysts' views, which read its tables
                projection.create(self.db)
            create_views(self.db)
        feeder = LogFeeder(self.ledger, self.db, many, self.batch_size)
        applied = feeder.catch_up(progress)
        for projection in many:
            feeder.require(projection.name)
        return applied


class FeederProcess:
    """Feeds the read models from a process of its own, on the other core, while this one
    records (`Runtime.feeding_apart`): a batch whenever the log has grown, until `stop`.

    It is one more process taking turns on the read DB (see the module's doc), so `stop`
    only ends its loop: whatever it had not fed yet is fed by the next `catch_up` of any
    process, and a batch it was killed in the middle of rolls back whole.
    """

    def __init__(
        self, open_runtime: Callable[[Any], Any], config: Any, idle_s: float = 0.05
    ) -> None:
        spawn = multiprocessing.get_context("spawn")  # never a fork of open connections
        self._stop = spawn.Event()
        self._process = spawn.Process(
            target=_feed_until,
            args=(open_runtime, config, self._stop, os.getpid(), idle_s),
            name="subledger-feeder",
            daemon=True,  # ended with us, whatever happens to us
        )

    def start(self) -> None:
        self._process.start()

    def stop(self, now: bool = False) -> None:
        """End the loop once it has caught up (`now`: at once, what it was feeding rolled
        back whole); returns once the process has ended."""
        self._stop.set()
        if self._process.pid is None:  # never started
            return
        if now:
            self._process.terminate()
        self._process.join()


def _feed_until(
    open_runtime: Callable[[Any], Any], config: Any, stop: Any, parent: int, idle_s: float
) -> None:
    """FeederProcess's loop: catch up, rest while nothing is new, until told or orphaned.

    Says nothing of a failure (busy or gone, or a bug): the recording process's own catch-up
    after `stop` meets it again, and says it there.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the recording process's to act on
    try:
        with open_runtime(config) as runtime:
            while not stop.is_set() and os.getppid() == parent:
                try:
                    fed = runtime.catch_up()
                except Exception:
                    fed = 0  # tried again after a rest
                if not fed:
                    stop.wait(idle_s)
    except Exception:
        return
