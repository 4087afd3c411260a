"""Due work: renewals, invoices, charges, retries, trial ends, in time order.

A part of the Ledger. What is due is asked of the `Schedule` (a hint from a read model);
each subscription itself decides what is really due and when.
"""

from __future__ import annotations

import heapq
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.persistence import Tracking

from domain.base import LedgerAggregate
from domain.bookkeeping import CommandReceipt, InvoiceSequence, LedgerClock, TaxRate
from domain.customer import Customer
from domain.errors import CustomerErased, UnknownSubscription
from domain.gateway import ChargeResult, PaymentGateway
from domain.identity import INVOICE_SEQUENCE_ID, tax_rate_uuid
from domain.plan import Plan
from domain.subscription import Subscription
from domain.unit_of_work import LedgerSettings, Schedule, UnitOfWork
from domain.vault import Vault

COUNTS = (  # what a clock advance reports it did
    "renewals",
    "invoices",
    "payments_failed",
    "churned",
    "trials_converted",
    "reminders",
    "retries",
)


class DueWork:
    """Running what is due, billing and collecting."""

    if TYPE_CHECKING:  # what the due work uses of the Ledger it is part of
        vault: Vault
        gateway: PaymentGateway
        schedule: Schedule | None
        settings: LedgerSettings

        def _flush(self, uow: UnitOfWork, tracking: Tracking | None = None) -> None: ...
        def _plan(self, uow: UnitOfWork, plan_id: str) -> Plan: ...
        def _customer(self, uow: UnitOfWork, customer_id: str) -> Customer: ...

    def _run_due(self, uow: UnitOfWork, to: datetime, meta: dict) -> dict[str, int]:
        """Execute everything due up to `to`, in time order, flushing in chunks."""
        settings = self.settings
        counts = dict.fromkeys(COUNTS, 0)
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
        number = self._sequence(uow, at, meta).take(at)
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

    def _bring_up_to(self, uow: UnitOfWork, sub: Subscription, at: datetime, meta: dict) -> None:
        """Run this subscription's own due work up to `at` before a command applies.

        A command may arrive before the clock has been advanced past its time: the
        renewal, retry or cancellation that fell due first is done first, as it would
        have been, so the command meets the state it was aimed at.
        """
        settings, counts = self.settings, dict.fromkeys(COUNTS, 0)
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
