"""The Ledger application: the one place that turns commands into events."""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import singledispatchmethod
from typing import Any, Protocol, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import IntegrityError, Tracking

from domain import commands as c
from domain.base import LedgerAggregate, iso
from domain.bookkeeping import (
    CommandReceipt,
    Coupon,
    InvoiceSequence,
    LedgerClock,
    TaxRate,
)
from domain.customer import Customer, check_profile, personal_fields
from domain.dunning import DunningSchedule
from domain.errors import (
    AlreadyExists,
    CustomerErased,
    InvalidInput,
    LedgerError,
    UnknownCoupon,
    UnknownCustomer,
    UnknownPlan,
    UnknownSubscription,
)
from domain.gateway import ChargeResult, PaymentGateway, SandboxGateway
from domain.identity import (
    CLOCK_ID,
    INVOICE_SEQUENCE_ID,
    coupon_uuid,
    customer_uuid,
    plan_uuid,
    receipt_uuid,
    subscription_uuid,
    tax_rate_uuid,
)
from domain.invoicing import Coupon as CouponTerms
from domain.pci import refuse_card_numbers
from domain.periods import Interval
from domain.plan import Plan
from domain.pricing import Pricing
from domain.subscription import Subscription
from domain.vault import Vault

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

    def __init__(self, app: Ledger) -> None:
        self.app = app
        self.aggregates: dict[UUID, LedgerAggregate] = {}
        self.personal: dict[str, dict[str, Any] | None] = {}
        self.sequence_meta: dict[str, Any] = {}

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
    ) -> None:
        super().__init__(env)
        self.vault = vault
        self.gateway = gateway or SandboxGateway()
        self.schedule = schedule
        self.settings = settings or LedgerSettings()

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
        runs once the outcomes are known and before anything is recorded (the Kafka consumer
        publishes rejections there, so a crash can repeat one but never lose one); it may run
        again if the batch is redone after a concurrent write.
        """
        for _attempt in range(5):
            try:
                return self._execute_batch(commands, tracking, before_commit)
            except IntegrityError:
                if tracking and self.recorder.has_tracking_id(  # type: ignore[attr-defined]
                    tracking.application_name, tracking.notification_id
                ):
                    raise
                continue  # someone else wrote these aggregates first: reload and redo
        return self._execute_batch(commands, tracking, before_commit)

    def _execute_batch(
        self,
        commands: Sequence[c.Command],
        tracking: Tracking | None,
        before_commit: Callable[[list[Result]], None] | None = None,
    ) -> list[Result]:
        rejected: dict[int, LedgerError] = {}
        while True:
            uow = UnitOfWork(self)
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
                    self._flush(uow, tracking)
            except BaseException:
                self._forget(uow)
                raise
            if failed_at is not None:
                self._forget(uow)  # redo without the rejected command, from stored state
                continue
            for result in results:  # crypto-shred only once the erasure is recorded
                if result.outcome and result.outcome.get("shred_key"):
                    self.vault.shred(result.outcome["shred_key"])
            return results

    def _forget(self, uow: UnitOfWork) -> None:
        """Drop what this unit of work touched from the aggregate cache.

        Cached aggregates are handed out without a copy (copying cost more than all the
        rest of a renewal), so a unit of work that does not commit must not leave its
        half-made changes behind: the next read loads them from the store.
        """
        cache = self.repository.cache
        if cache is None:
            return
        for aggregate_id in uow.aggregates:
            with contextlib.suppress(KeyError):
                cache.get(aggregate_id, evict=True)

    def _apply(self, uow: UnitOfWork, command: c.Command) -> dict[str, Any]:
        receipt_id = receipt_uuid(command.command_id)
        receipt = uow.find(CommandReceipt, receipt_id)
        if receipt is not None:
            return {**receipt.outcome, "duplicate": True}
        # every field, the envelope's too, but the machine ids: snowflake-style numeric
        # ids of 13-19 digits would pass the Luhn check one time in ten
        refuse_card_numbers(
            {k: v for k, v in vars(command).items() if k not in ("command_id", "correlation_id")}
        )
        outcome = {"command_id": command.command_id, "command": command.command_name}
        outcome.update(self.handle(command, uow) or {})
        uow.add(
            CommandReceipt.record(
                id=receipt_id,
                command=command.command_name,
                outcome=outcome,
                at=command.at,
                meta=command.meta(),
            )
        )
        return {**outcome, "duplicate": False}

    def _flush(self, uow: UnitOfWork, tracking: Tracking | None = None) -> None:
        seq = uow.aggregates.get(INVOICE_SEQUENCE_ID)
        if isinstance(seq, InvoiceSequence) and seq.taken > seq.last:
            seq.record_allocations(seq.modified_on, uow.sequence_meta)
        events = uow.events()
        if not events and tracking is None:
            return
        processing = ProcessingEvent[UUID](tracking=tracking)
        processing.collect_events(*events)
        self._record(processing)

    # ---- handlers ---------------------------------------------------------------------

    @singledispatchmethod
    def handle(self, command: c.Command, uow: UnitOfWork) -> dict[str, Any] | None:
        raise InvalidInput(f"unknown command {type(command).__name__}")

    @handle.register
    def _(self, cmd: c.DefinePlan, uow: UnitOfWork) -> dict[str, Any]:
        pricing = Pricing.from_dict(cmd.pricing)
        plan = Plan.define(
            id=plan_uuid(cmd.plan_id),
            plan_id=cmd.plan_id,
            name=cmd.name,
            currency=cmd.currency,
            pricing=pricing,
            interval=Interval.parse(cmd.interval, cmd.interval_count),
            trial_days=cmd.trial_days,
            features=list(cmd.features),
            at=cmd.at,
            meta=cmd.meta(),
        )
        self._add(uow, plan, f"plan '{cmd.plan_id}' already exists")
        return {"plan_id": cmd.plan_id}

    @handle.register
    def _(self, cmd: c.ChangePlanPrice, uow: UnitOfWork) -> dict[str, Any]:
        plan = self._plan(uow, cmd.plan_id)
        subscribers: list[Subscription] = []
        if cmd.apply_to == "immediately" and self.schedule is not None:
            for sub_id in self.schedule.subscriptions_on_plan(cmd.plan_id):
                sub = uow.find(Subscription, sub_id)
                if sub is not None:  # their overdue work first, at the old price
                    self._bring_up_to(uow, sub, cmd.at, cmd.meta(actor="scheduler"))
                    subscribers.append(sub)
        plan.change_price(Pricing.from_dict(cmd.pricing), cmd.apply_to, cmd.at, cmd.meta())
        migrated = 0
        for sub in subscribers:
            if sub.status not in ("active", "past_due", "trialing"):
                continue
            if sub.plan_id != plan.plan_id or sub.plan_version >= plan.price_version:
                continue
            self._change(uow, sub, plan, sub.quantity, cmd, reason="price_change")
            migrated += 1
        return {"plan_id": cmd.plan_id, "price_version": plan.price_version, "migrated": migrated}

    @handle.register
    def _(self, cmd: c.RetirePlan, uow: UnitOfWork) -> dict[str, Any]:
        self._plan(uow, cmd.plan_id).retire(cmd.at, cmd.meta())
        return {"plan_id": cmd.plan_id}

    @handle.register
    def _(self, cmd: c.RegisterCustomer, uow: UnitOfWork) -> dict[str, Any]:
        check_profile(
            name=cmd.name, email=cmd.email, country=cmd.country, payment_token=cmd.payment_token
        )
        cid = customer_uuid(cmd.customer_id)
        if uow.find(Customer, cid) is not None:
            raise AlreadyExists(f"customer '{cmd.customer_id}' already exists")
        personal = self.vault.encrypt(
            str(cid), personal_fields(cmd.name, cmd.email, cmd.payment_token, cmd.preferences)
        )
        uow.add(
            Customer.register(
                id=cid,
                customer_id=cmd.customer_id,
                country=cmd.country,
                personal=personal,
                at=cmd.at,
                meta=cmd.meta(),
            )
        )
        return {"customer_id": cmd.customer_id}

    @handle.register
    def _(self, cmd: c.UpdateCustomer, uow: UnitOfWork) -> dict[str, Any]:
        check_profile(
            name=cmd.name, email=cmd.email, country=cmd.country, payment_token=cmd.payment_token
        )
        customer = self._customer(uow, cmd.customer_id)
        data = dict(self.personal(uow, customer))
        for key in ("name", "email", "payment_token"):
            if getattr(cmd, key) is not None:
                data[key] = getattr(cmd, key)
        uow.personal[str(customer.id)] = data
        customer.update(
            country=cmd.country or customer.country,
            personal=self.vault.encrypt(str(customer.id), data),
            at=cmd.at,
            meta=cmd.meta(),
        )
        return {"customer_id": cmd.customer_id}

    @handle.register
    def _(self, cmd: c.EraseCustomer, uow: UnitOfWork) -> dict[str, Any]:
        customer = self._customer(uow, cmd.customer_id)
        customer.erase(cmd.at, cmd.meta())
        return {"customer_id": cmd.customer_id, "shred_key": str(customer.id)}

    @handle.register
    def _(self, cmd: c.DefineCoupon, uow: UnitOfWork) -> dict[str, Any]:
        terms = CouponTerms(
            code=cmd.code,
            percent_off_bp=cmd.percent_off_bp,
            amount_off=cmd.amount_off,
            currency=cmd.currency,
            duration=cmd.duration,
            periods=cmd.periods,
        )
        coupon = Coupon.define(id=coupon_uuid(cmd.code), terms=terms, at=cmd.at, meta=cmd.meta())
        self._add(uow, coupon, f"coupon '{cmd.code}' already exists")
        return {"code": cmd.code}

    @handle.register
    def _(self, cmd: c.SetTaxRate, uow: UnitOfWork) -> dict[str, Any]:
        tax = uow.find(TaxRate, tax_rate_uuid(cmd.country))
        if tax is None:
            check_profile(name=None, email=None, country=cmd.country, payment_token=None)
            uow.add(
                TaxRate.set(
                    id=tax_rate_uuid(cmd.country),
                    country=cmd.country,
                    rate_ppm=cmd.rate_ppm,
                    at=cmd.at,
                    meta=cmd.meta(),
                )
            )
        else:
            tax.change(cmd.rate_ppm, cmd.at, cmd.meta())
        return {"country": cmd.country, "rate_ppm": cmd.rate_ppm}

    @handle.register
    def _(self, cmd: c.Subscribe, uow: UnitOfWork) -> dict[str, Any]:
        customer = self._customer(uow, cmd.customer_id)
        customer.check_not_erased()
        plan = self._plan(uow, cmd.plan_id)
        coupon = None
        if cmd.coupon:
            found = uow.get(
                Coupon, coupon_uuid(cmd.coupon), UnknownCoupon(f"unknown coupon '{cmd.coupon}'")
            )
            coupon = found.terms
        if not cmd.subscription_id:
            raise InvalidInput("a subscription needs an id")
        if cmd.anchor_day is not None and not 1 <= cmd.anchor_day <= 28:
            # days 29-31 would drift to the 28th-30th after a short month
            raise InvalidInput("the billing anchor day is between 1 and 28")
        sub = Subscription.subscribe(
            id=subscription_uuid(cmd.subscription_id),
            subscription_id=cmd.subscription_id,
            customer_id=cmd.customer_id,
            plan=plan,
            quantity=cmd.quantity,
            coupon=coupon,
            anchor_day=cmd.anchor_day,
            at=cmd.at,
            meta=cmd.meta(),
        )
        self._add(uow, sub, f"subscription '{cmd.subscription_id}' already exists")
        invoices = []
        if sub.status == "active":
            invoices = self._bill(uow, sub, plan, "subscription_create", cmd.at, cmd.meta())
        return {"subscription_id": cmd.subscription_id, "status": sub.status, "invoices": invoices}

    @handle.register
    def _(self, cmd: c.ChangePlan, uow: UnitOfWork) -> dict[str, Any]:
        sub = self._subscription(uow, cmd.subscription_id, cmd)
        plan = self._plan(uow, cmd.plan_id)
        invoices = self._change(uow, sub, plan, cmd.quantity or sub.quantity, cmd)
        return {
            "subscription_id": cmd.subscription_id,
            "plan_id": cmd.plan_id,
            "quantity": sub.quantity,
            "invoices": invoices,
        }

    @handle.register
    def _(self, cmd: c.Cancel, uow: UnitOfWork) -> dict[str, Any]:
        sub = self._subscription(uow, cmd.subscription_id, cmd)
        sub.cancel(immediately=cmd.immediately, reason=cmd.reason, at=cmd.at, meta=cmd.meta())
        return {
            "subscription_id": cmd.subscription_id,
            "status": sub.status,
            "cancel_at": iso(cmd.at if cmd.immediately else sub.period_end),
        }

    @handle.register
    def _(self, cmd: c.Pause, uow: UnitOfWork) -> dict[str, Any]:
        sub = self._subscription(uow, cmd.subscription_id, cmd)
        sub.pause(cmd.at, cmd.meta())
        return {"subscription_id": cmd.subscription_id, "status": sub.status}

    @handle.register
    def _(self, cmd: c.Resume, uow: UnitOfWork) -> dict[str, Any]:
        sub = self._subscription(uow, cmd.subscription_id, cmd)
        invoices = []
        if sub.resume(cmd.at, cmd.meta()):
            plan = self._plan(uow, sub.plan_id)
            invoices = self._bill(uow, sub, plan, "resume", cmd.at, cmd.meta())
        return {"subscription_id": cmd.subscription_id, "status": sub.status, "invoices": invoices}

    @handle.register
    def _(self, cmd: c.Reactivate, uow: UnitOfWork) -> dict[str, Any]:
        sub = self._subscription(uow, cmd.subscription_id, cmd)
        plan = self._plan(uow, sub.plan_id)
        self._customer(uow, sub.customer_id).check_not_erased()
        invoices = []
        if sub.reactivate(plan=plan, at=cmd.at, meta=cmd.meta()):
            invoices = self._bill(uow, sub, plan, "reactivation", cmd.at, cmd.meta())
        return {"subscription_id": cmd.subscription_id, "status": sub.status, "invoices": invoices}

    @handle.register
    def _(self, cmd: c.RecordPayment, uow: UnitOfWork) -> dict[str, Any]:
        sub = self._subscription(uow, cmd.subscription_id, cmd)
        sub.record_payment(cmd.invoice_number, cmd.amount, cmd.reference, cmd.at, cmd.meta())
        return {
            "subscription_id": cmd.subscription_id,
            "invoice": cmd.invoice_number,
            "status": sub.status,
        }

    @handle.register
    def _(self, cmd: c.AdvanceClock, uow: UnitOfWork) -> dict[str, Any]:
        clock = uow.find(LedgerClock, CLOCK_ID)
        if clock is None:
            clock = uow.add(LedgerClock.start(id=CLOCK_ID, at=cmd.at, meta=cmd.meta()))
        else:
            clock.advance(cmd.at, cmd.meta())
        done = self._run_due(uow, cmd.at, cmd.meta(actor="scheduler"))
        return {"to": iso(cmd.at), **done}

    # ---- the schedule -----------------------------------------------------------------

    def _run_due(self, uow: UnitOfWork, to: datetime, meta: dict) -> dict[str, int]:
        """Execute everything due up to `to`, in time order, flushing in chunks."""
        settings = self.settings
        counts = {
            "renewals": 0,
            "invoices": 0,
            "payments_failed": 0,
            "churned": 0,
            "trials_converted": 0,
            "reminders": 0,
            "retries": 0,
        }
        if self.schedule is None:
            return counts
        heap: list[tuple[datetime, int, str, UUID]] = []

        def push(sub: Subscription) -> None:
            nxt = sub.next_due(settings.reminder_days, settings.remind_all_plans)
            if nxt is not None and nxt[0] <= to:
                heapq.heappush(heap, (nxt[0], nxt[1], nxt[2], sub.id))

        for sub_id in self.schedule.due_subscriptions(to):
            sub = uow.find(Subscription, sub_id)
            if sub is not None:
                push(sub)
        for agg in list(uow.aggregates.values()):  # touched earlier in this very batch
            if isinstance(agg, Subscription):
                push(agg)
        while heap:
            at, _prio, what, sub_id = heapq.heappop(heap)
            sub = uow.get(Subscription, sub_id, UnknownSubscription(str(sub_id)))
            nxt = sub.next_due(settings.reminder_days, settings.remind_all_plans)
            if nxt is None or nxt[0] != at or nxt[2] != what:
                continue  # stale entry: that work was done or moved
            self._run_one(uow, sub, at, what, meta, counts)
            push(sub)
            if uow.size >= settings.chunk_size:
                self._flush(uow)
                kept: dict[UUID, LedgerAggregate] = {
                    k: v
                    for k, v in uow.aggregates.items()
                    if isinstance(v, (LedgerClock, CommandReceipt))
                }
                uow.aggregates = kept
        return counts

    def _run_one(
        self,
        uow: UnitOfWork,
        sub: Subscription,
        at: datetime,
        what: str,
        meta: dict,
        counts: dict[str, int],
    ) -> None:
        if what.startswith("retry:"):
            counts["retries"] += 1
            self._collect(uow, sub, what.split(":", 1)[1], at, meta, counts)
        elif what == "remind":
            counts["reminders"] += 1
            sub.remind(at, meta)
        elif sub.cancel_at_period_end:
            counts["churned"] += 1
            sub.churn("voluntary", "canceled_at_period_end", at, meta)
        elif what == "trial_end":
            counts["trials_converted"] += 1
            sub.convert_trial(at, meta)
            self._bill(uow, sub, self._plan(uow, sub.plan_id), "trial_conversion", at, meta, counts)
        elif what == "renew":
            if self._customer(uow, sub.customer_id).erased:  # nobody left to bill
                counts["churned"] += 1
                sub.churn("involuntary", "customer_erased", at, meta)
                return
            counts["renewals"] += 1
            plan = self._plan(uow, sub.plan_id)
            sub.renew(at, plan, meta)
            self._bill(uow, sub, plan, "renewal", at, meta, counts)

    # ---- billing and collection -------------------------------------------------------

    def _bill(
        self,
        uow: UnitOfWork,
        sub: Subscription,
        plan: Plan,
        reason: str,
        at: datetime,
        meta: dict,
        counts: dict[str, int] | None = None,
    ) -> list[str]:
        return self._invoice(uow, sub, sub.recurring_lines(plan.name), reason, at, meta, counts)

    def _invoice(
        self,
        uow: UnitOfWork,
        sub: Subscription,
        lines: list,
        reason: str,
        at: datetime,
        meta: dict,
        counts: dict[str, int] | None = None,
    ) -> list[str]:
        if not lines:
            return []
        customer = self._customer(uow, sub.customer_id)
        tax = uow.find(TaxRate, tax_rate_uuid(customer.country))
        number = self._sequence(uow, at, meta).take()
        invoice = sub.issue_invoice(
            number=number,
            reason=reason,
            lines=lines,
            tax_rate_ppm=tax.rate_ppm if tax else 0,
            country=customer.country,
            at=at,
            meta=meta,
        )
        if counts is not None:
            counts["invoices"] += 1
        if invoice.amount_due > 0:
            self._collect(uow, sub, number, at, meta, counts)
        return [number]

    def _collect(
        self,
        uow: UnitOfWork,
        sub: Subscription,
        number: str,
        at: datetime,
        meta: dict,
        counts: dict[str, int] | None = None,
    ) -> None:
        """Charge the gateway for an open invoice; the idempotency key is invoice + attempt."""
        customer = self._customer(uow, sub.customer_id)
        attempt = sub.next_attempt(number)
        invoice = sub.open_invoices[number]
        personal = None if customer.erased else self.personal(uow, customer)
        token = personal.get("payment_token") if personal else None
        if customer.erased:
            result = ChargeResult(False, "", "customer_erased")
        elif not token:
            result = ChargeResult(False, "", "no_payment_method")
        else:
            result = self.gateway.charge(
                token=str(token),
                amount=invoice["amount_due"],
                currency=sub.currency,
                idempotency_key=f"{sub.id}:{number}:{attempt}",
            )
        first_failed = invoice["first_failed_at"] or at
        next_retry = (
            None
            if result.succeeded or customer.erased
            else self.settings.dunning.next_retry_at(first_failed, attempt)
        )
        before = sub.status
        sub.record_charge(
            number=number,
            result=result,
            attempt=attempt,
            next_retry_at=next_retry,
            at=at,
            meta=meta,
        )
        if counts is not None and not result.succeeded:
            counts["payments_failed"] += 1
            if before != "canceled" and sub.status == "canceled":
                counts["churned"] += 1

    def _change(
        self,
        uow: UnitOfWork,
        sub: Subscription,
        plan: Plan,
        quantity: int,
        cmd: c.Command,
        reason: str = "customer_request",
    ) -> list[str]:
        old_plan = self._plan(uow, sub.plan_id)
        lines = sub.change_plan(
            plan=plan,
            quantity=quantity,
            plan_name_old=old_plan.name,
            at=cmd.at,
            meta=cmd.meta(),
            reason=reason,
        )
        return self._invoice(
            uow,
            sub,
            lines,
            "proration" if sub.anchor != cmd.at else "plan_change",
            cmd.at,
            cmd.meta(),
        )

    # ---- lookups ----------------------------------------------------------------------

    def _add(self, uow: UnitOfWork, agg: A, message: str) -> A:
        try:
            return uow.add(agg)
        except AlreadyExists:
            raise AlreadyExists(message) from None

    def _plan(self, uow: UnitOfWork, plan_id: str) -> Plan:
        return uow.get(Plan, plan_uuid(plan_id), UnknownPlan(f"unknown plan '{plan_id}'"))

    def _customer(self, uow: UnitOfWork, customer_id: str) -> Customer:
        return uow.get(
            Customer,
            customer_uuid(customer_id),
            UnknownCustomer(f"unknown customer '{customer_id}'"),
        )

    def _subscription(self, uow: UnitOfWork, subscription_id: str, cmd: c.Command) -> Subscription:
        sub = uow.get(
            Subscription,
            subscription_uuid(subscription_id),
            UnknownSubscription(f"unknown subscription '{subscription_id}'"),
        )
        owner = getattr(cmd, "customer_id", None)
        if owner is not None and owner != sub.customer_id:
            raise InvalidInput(
                f"subscription '{subscription_id}' does not belong to customer '{owner}'"
            )
        self._bring_up_to(uow, sub, cmd.at, cmd.meta(actor="scheduler"))
        return sub

    def _bring_up_to(self, uow: UnitOfWork, sub: Subscription, at: datetime, meta: dict) -> None:
        """Run this subscription's own due work up to `at` before a command applies.

        A command may arrive before the clock has been advanced past its time: the
        renewal, retry or cancellation that fell due first is done first, as it would
        have been, so the command meets the state it was aimed at.
        """
        settings, counts = (
            self.settings,
            dict.fromkeys(
                (
                    "renewals",
                    "invoices",
                    "payments_failed",
                    "churned",
                    "trials_converted",
                    "reminders",
                    "retries",
                ),
                0,
            ),
        )
        while True:
            nxt = sub.next_due(settings.reminder_days, settings.remind_all_plans)
            if nxt is None or nxt[0] > at:
                return
            self._run_one(uow, sub, nxt[0], nxt[2], meta, counts)

    def _sequence(self, uow: UnitOfWork, at: datetime, meta: dict) -> InvoiceSequence:
        if not uow.sequence_meta:  # the allocation is recorded as the first taker's
            uow.sequence_meta = dict(meta)
        seq = uow.find(InvoiceSequence, INVOICE_SEQUENCE_ID)
        if seq is None:
            seq = uow.add(InvoiceSequence.start(id=INVOICE_SEQUENCE_ID, at=at, meta=meta))
        return seq

    def personal(self, uow: UnitOfWork, customer: Customer) -> dict[str, Any]:
        key = str(customer.id)
        if key not in uow.personal:
            uow.personal[key] = (
                None if customer.erased else self.vault.decrypt(key, customer.personal)
            )
        data = uow.personal[key]
        if data is None:
            raise CustomerErased(f"customer '{customer.customer_id}' has been erased")
        return data

    # ---- reads for the CLI and auditors -----------------------------------------------

    def get(self, cls: type[A], id: UUID, *, version: int | None = None) -> A | None:
        try:
            agg: Any = self.repository.get(id, version=version)
        except AggregateNotFoundError:
            return None
        return agg if isinstance(agg, cls) else None

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
