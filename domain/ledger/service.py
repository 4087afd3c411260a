"""The Ledger application: the one place that turns commands into events.

Transactions: `execute_batch` records a batch of commands, with the events they caused and
the Kafka position (`tracking`) they came from, in ONE transaction, except for one thing:
due work over many subscriptions (the renewals, retries, ... a clock move runs) commits in
chunks of `LedgerSettings.chunk_size` aggregates as it goes (domain/ledger/due.py). A chunk
commits everything the batch has done so far (earlier commands too, with their receipts)
without the tracking position. A crash between chunks loses and doubles nothing: the
commands come again, their receipts make the committed ones duplicates, and due work is
derived from the book, so running the same command again finishes it.

The gateway is never called inside a transaction: collecting an invoice records a
ChargeRequested, and embedded the payments worker (`after_commit`, consumers/payments.py)
charges it right after the commit (a clock advance commits and settles each due charge
before its next due item, domain/ledger/due.py); in Kafka mode `serve --workers payments` does.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProcessingEvent,
    project_aggregate,
)
from eventsourcing.persistence import IntegrityError, Tracking

from domain import commands as c
from domain.base import iso
from domain.books.audit_chain import AuditChain
from domain.books.clock import LedgerClock
from domain.books.command_receipt import CommandReceipt
from domain.books.invoice_sequence import InvoiceSequence
from domain.catalog.plan import Plan
from domain.customer import Customer
from domain.errors import (
    AlreadyExists,
    CustomerErased,
    InvalidInput,
    LedgerError,
    UnknownCustomer,
    UnknownPlan,
    UnknownSubscription,
)
from domain.identity import (
    AUDIT_CHAIN_ID,
    CLOCK_ID,
    CREDIT_NOTE_SEQUENCE_ID,
    INVOICE_SEQUENCE_ID,
    customer_uuid,
    plan_uuid,
    receipt_uuid,
    subscription_uuid,
)
from domain.ledger.due import bring_up_to, take_effect
from domain.ledger.handlers import handler_for
from domain.ledger.settings import LedgerSettings, Result
from domain.ledger.unit_of_work import A, UnitOfWork
from domain.ports import AfterCommit, PaymentGateway, Schedule
from domain.subscription import Subscription
from domain.vault import Vault

CONFLICT_RETRIES = 100
log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())  # the CLI speaks in one line of its own; serve logs


def read_by(commands: Sequence[c.Command]) -> list[UUID]:
    """The aggregates a batch of commands will look up first: each one's receipt, customer,
    subscription and plan, and the clock and invoice sequence every batch may move."""
    ids = [CLOCK_ID, INVOICE_SEQUENCE_ID, CREDIT_NOTE_SEQUENCE_ID]
    for command in commands:
        ids.append(receipt_uuid(command.command_id))
        if customer_id := getattr(command, "customer_id", None):
            ids.append(customer_uuid(customer_id))
        if subscription_id := getattr(command, "subscription_id", None):
            ids.append(subscription_uuid(subscription_id))
        if plan_id := getattr(command, "plan_id", None):
            ids.append(plan_uuid(plan_id))
    return list(dict.fromkeys(ids))


class Ledger(Application[UUID]):
    """Subscriptions, customers, plans and their money, as an immutable history."""

    name = "Ledger"

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        vault: Vault,
        gateway: PaymentGateway | None = None,
        schedule: Schedule | None = None,
        settings: LedgerSettings | None = None,
        after_commit: AfterCommit | None = None,
        recorded_clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(env)
        # the wall clock (bootstrap's), for each event's `recorded_at`; never an effective time
        self.recorded_clock = recorded_clock
        self.vault = vault
        self.gateway = gateway  # the in-process payments worker's (embedded)
        self.schedule = schedule
        self.settings = settings or LedgerSettings()
        # Embedded: the payments worker, run in process after each commit (due work's too)
        self.after_commit = after_commit
        # told how many events each transaction recorded (serve's metrics), after the commit
        self.on_recorded: Callable[[int], None] | None = None

    def construct_recorder(self):  # type: ignore[override]
        """A process recorder, so Kafka offsets can commit with the events they caused."""
        return self.factory.process_recorder()

    # ---- executing commands -----------------------------------------------------------

    def execute(self, command: c.Command) -> dict[str, Any]:
        """Apply one command; raise its LedgerError if it breaks a rule."""
        (result,) = self.execute_batch([command])
        if result.error is not None:
            raise result.error
        assert result.outcome is not None
        return result.outcome

    def execute_batch(
        self,
        commands: Sequence[c.Command],
        tracking: Tracking | None = None,
        before_commit: Callable[[list[Result]], None] | None = None,
    ) -> list[Result]:
        """Apply commands in one transaction (with `tracking`); a rejected one changes nothing.

        On a rule broken halfway through a command, the batch is redone without it, so no
        partial effect of a rejected command can reach the store. `before_commit(results)`
        runs once the outcomes are known and before the batch's transaction (the Kafka
        consumer publishes rejections there, so a crash can repeat one but never lose one);
        it may run again if the batch is redone after a concurrent write. The one exception
        to "one transaction" is due work over many subscriptions, committed in chunks
        before the batch's own transaction (see the module docstring).
        """
        for attempt in range(1, CONFLICT_RETRIES):
            try:
                results = self._execute_batch(commands, tracking, before_commit)
                self.settle_after_commit()
                return results
            except IntegrityError:
                if tracking and self.recorder.has_tracking_id(  # type: ignore[attr-defined]
                    tracking.application_name, tracking.notification_id
                ):
                    raise
                # Someone else wrote these aggregates first (the invoice sequence is every
                # writer's): reload and redo, after a random pause so that two writers in
                # step fall out of step instead of beating each other every time.
                time.sleep(random.uniform(0, min(0.005 * attempt, 0.2)))
        results = self._execute_batch(commands, tracking, before_commit)
        self.settle_after_commit()
        return results

    def settle_after_commit(self) -> None:
        """Run the in-process payments worker; the batch is recorded, so nothing here fails it."""
        if self.after_commit is None:
            return
        try:
            self.after_commit()
        except Exception:  # the requests stay pending: the next commit settles them
            log.warning("settling charges after a commit failed", exc_info=True)

    def _execute_batch(
        self,
        commands: Sequence[c.Command],
        tracking: Tracking | None,
        before_commit: Callable[[list[Result]], None] | None = None,
    ) -> list[Result]:
        rejected: dict[int, LedgerError] = {}
        committed_due: dict[str, dict[str, int]] = {}
        while True:
            uow = UnitOfWork(self.repository)
            uow.committed_due = committed_due
            self.preload(uow, read_by(commands))
            results: list[Result] = []
            failed_at = None
            try:
                for i, command in enumerate(commands):
                    if i in rejected:
                        results.append(Result(command, error=rejected[i]))
                        continue
                    try:
                        outcome = self._apply(uow, command)
                    except LedgerError as error:
                        rejected[i] = error
                        failed_at = i
                        break
                    results.append(Result(command, outcome=outcome))
                if failed_at is None:
                    if before_commit is not None:
                        before_commit(results)
                    self.flush(uow, tracking)
            except BaseException:
                self._forget(uow)
                raise
            if failed_at is not None:
                self._forget(uow, keep_unchanged=True)  # redo without it, from stored state
                continue
            for result in results:  # crypto-shred only once the erasure is recorded
                if result.outcome and result.outcome.get("shred_key"):
                    self.vault.shred(result.outcome["shred_key"])
            return results

    def _forget(self, uow: UnitOfWork, keep_unchanged: bool = False) -> None:
        """Drop what this unit of work touched from the aggregate cache.

        Cached aggregates are handed out without a copy (copying cost more than all the
        rest of a renewal), so a unit of work that does not commit must not leave its
        half-made changes behind: the next read loads them from the store. After a refused
        command (`keep_unchanged`: nothing failed in the store), what it only read stays
        cached (`discard_unrecorded`), so the redo does not replay the clock's or the
        invoice sequence's whole history; after any other failure everything goes.
        """
        if self.repository.cache is None:
            return
        for aggregate_id, agg in uow.aggregates.items():
            if keep_unchanged and agg.discard_unrecorded():
                continue
            self._uncache(aggregate_id)

    def _uncache(self, aggregate_id: UUID) -> None:
        """Drop one aggregate from the cache, if it is there: the next read is the store's."""
        if self.repository.cache is not None:
            with contextlib.suppress(KeyError):
                self.repository.cache.get(aggregate_id, evict=True)

    def _apply(self, uow: UnitOfWork, command: c.Command) -> dict[str, Any]:
        receipt_id = receipt_uuid(command.command_id)
        digest = command.request_digest()
        receipt = uow.find(CommandReceipt, receipt_id)
        if receipt is not None:
            receipt.check_same_request(command.command_id, command.command_name, digest)
            return {**receipt.outcome, "duplicate": True}
        command = take_effect(self, uow, command)
        outcome: dict[str, Any] = {
            "command_id": command.command_id,
            "command": command.command_name,
            "at": iso(command.at),
        }
        if command.requested_at != command.at:
            outcome["requested_at"] = iso(command.requested_at)
            outcome["note"] = (
                f"dated before the ledger clock: took effect at {iso(command.at)}"
                f" instead of {iso(command.requested_at)}"
            )
        outcome.update(handler_for(command)(self, command, uow))
        ran = {k: v for k, v in uow.due.items() if v}
        if ran and not isinstance(command, c.AdvanceClock):
            outcome["due_work"] = ran  # what came due before this command, and was done
        uow.start(  # looked up at the top: absent then
            CommandReceipt.record(
                id=receipt_id,
                command=command.command_name,
                outcome=outcome,
                digest=digest,
                at=command.at,
                meta=command.meta(),
            )
        )
        return {**outcome, "duplicate": False}

    def flush(self, uow: UnitOfWork, tracking: Tracking | None = None) -> None:
        """Record the unit of work's events (and `tracking`) in one transaction."""
        seq = uow.aggregates.get(INVOICE_SEQUENCE_ID)
        if isinstance(seq, InvoiceSequence) and seq.taken > seq.last:
            seq.record_allocations(uow.sequence_meta)
        clock = uow.aggregates.get(CLOCK_ID)
        if isinstance(clock, LedgerClock) and uow.clock_meta:
            clock.record_advance(uow.clock_meta)
        events = uow.events()
        if not events and tracking is None:
            return
        if self.recorded_clock is not None:  # when it was written down, beside when it took effect
            stamp = iso(self.recorded_clock())
            for event in events:
                object.__setattr__(event, "meta", {**event.meta, "recorded_at": stamp})
        processing = ProcessingEvent[UUID](tracking=tracking)
        processing.events.extend(events)  # as collect_events(*events), without its
        # per-event isinstance check against a runtime Protocol (a tenth of a renewal's time)
        self._record(processing)
        if self.repository.cache is not None:  # the new ones too: not read back next time
            for agg in uow.aggregates.values():
                self.repository.cache.put(agg.id, agg)
        if self.on_recorded is not None and events:
            self.on_recorded(len(events))

    def preload(self, uow: UnitOfWork, ids: Iterable[UUID]) -> None:
        """Read the aggregates `ids` name into `uow` in one query, before it asks for them.

        Each lookup would otherwise ask the store once: for what it has (an aggregate's
        history, or the events since the cached copy) or that it has nothing (a new
        command's receipt, a new customer). Only where the recorder can read many at once
        (PostgreSQL; the embedded store reads in process, one aggregate at a time).
        """
        if not self.reads_ahead:
            return
        select = self.recorder.select_histories  # type: ignore[attr-defined]
        cache = self.repository.cache
        assert cache is not None  # reads_ahead says so
        wanted: dict[UUID, Any] = {}
        for aggregate_id in ids:
            if aggregate_id in uow.aggregates or aggregate_id in uow.preloaded:
                continue
            try:
                wanted[aggregate_id] = cache.get(aggregate_id)
            except KeyError:
                wanted[aggregate_id] = None
        if not wanted:
            return
        found = select({i: agg.version if agg else 0 for i, agg in wanted.items()})
        for aggregate_id, cached in wanted.items():
            events = [self.mapper.to_domain_event(e) for e in found.get(aggregate_id, ())]
            # as the repository does: its history, or the cached copy fast-forwarded
            agg = project_aggregate(cached, events) if events else cached
            if agg is None:
                uow.absent.add(aggregate_id)
                continue
            cache.put(aggregate_id, agg)
            uow.preloaded[aggregate_id] = agg

    def preload_subscriptions(self, uow: UnitOfWork, ids: Iterable[UUID]) -> None:
        """`preload` these subscriptions, then their customers: a query each, not one each."""
        wanted = list(ids)
        self.preload(uow, wanted)
        subs = [s for s in map(uow.preloaded.get, wanted) if isinstance(s, Subscription)]
        self.preload(uow, [customer_uuid(s.customer_id) for s in subs])

    @property
    def reads_ahead(self) -> bool:
        """Whether `preload` reads many aggregates in one query; where not, it does nothing
        (and a caller need not gather what to read ahead)."""
        return hasattr(self.recorder, "select_histories") and self.repository.cache is not None

    # ---- lookups for the handlers -----------------------------------------------------

    def add_new(self, uow: UnitOfWork, agg: A, message: str) -> A:
        try:
            return uow.add(agg)
        except AlreadyExists:
            raise AlreadyExists(message) from None

    def load_plan(self, uow: UnitOfWork, plan_id: str) -> Plan:
        return uow.get(Plan, plan_uuid(plan_id), lambda: UnknownPlan(f"unknown plan '{plan_id}'"))

    def load_customer(self, uow: UnitOfWork, customer_id: str) -> Customer:
        return uow.get(
            Customer,
            customer_uuid(customer_id),
            lambda: UnknownCustomer(f"unknown customer '{customer_id}'"),
        )

    def load_subscription(
        self, uow: UnitOfWork, subscription_id: str, cmd: c.Command
    ) -> Subscription:
        """The subscription a command is for, owned by its customer, its due work done."""
        sub = uow.get(
            Subscription,
            subscription_uuid(subscription_id),
            lambda: UnknownSubscription(f"unknown subscription '{subscription_id}'"),
        )
        owner = getattr(cmd, "customer_id", None)
        if owner is not None and owner != sub.customer_id:
            raise InvalidInput(
                f"subscription '{subscription_id}' does not belong to customer '{owner}'"
            )
        bring_up_to(self, uow, sub, cmd.at, cmd.meta(actor="scheduler"))
        return sub

    def personal(self, uow: UnitOfWork, customer: Customer) -> dict[str, Any]:
        """The customer's decrypted personal data (once per transaction); erased: an error."""
        key = str(customer.id)
        if key not in uow.personal:
            uow.personal[key] = (
                None if customer.erased else self.vault.decrypt(key, customer.personal)
            )
        data = uow.personal[key]
        if data is None:
            raise CustomerErased(f"customer '{customer.customer_id}' has been erased")
        return data

    def record_audit_seal(self, events_before: int, at: datetime, meta: dict) -> bool:
        """Record that this store's chain is being sealed; False if recorded already."""
        uow = UnitOfWork(self.repository)
        if uow.find(AuditChain, AUDIT_CHAIN_ID) is not None:
            return False
        uow.start(AuditChain.seal(id=AUDIT_CHAIN_ID, events_before=events_before, at=at, meta=meta))
        self.flush(uow)
        return True

    # ---- reads for the CLI and auditors -----------------------------------------------

    def get(self, cls: type[A], id: UUID, *, version: int | None = None) -> A | None:
        try:
            agg: Any = self.repository.get(id, version=version)
        except AggregateNotFoundError:
            return None
        return agg if isinstance(agg, cls) else None

    def get_at_least(self, cls: type[A], id: UUID, version: int) -> A | None:
        """The aggregate with at least its event `version` (one read in the store): a copy
        cached before another process on the same embedded store recorded that event is
        dropped and read again (embedded, the cache is not fast-forwarded)."""
        agg = self.get(cls, id)
        if agg is not None and agg.version < version:
            self._uncache(id)
            agg = self.get(cls, id)
        return agg

    def customer_profile(self, customer_id: str) -> dict[str, Any]:
        customer = self.get(Customer, customer_uuid(customer_id))
        if customer is None:
            raise UnknownCustomer(f"unknown customer '{customer_id}'")
        data = None if customer.erased else self.vault.decrypt(str(customer.id), customer.personal)
        profile: dict[str, Any] = {
            "customer_id": customer_id,
            "country": customer.country,
            "erased": data is None,
        }
        if data is not None:
            profile.update(data)
        return profile

    def clock_now(self) -> datetime | None:
        clock = self.get(LedgerClock, CLOCK_ID)
        return clock.now if clock else None

    def history(self, aggregate_id: UUID) -> list[Any]:
        return list(self.events.get(aggregate_id))
