"""The subscription: the design card's aggregate, from Subscribed to Churned.

Every event carries the subscription's `status` and `mrr` after it, so a consumer of the
events topic never has to re-derive billing state to follow the book.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from domain.base import LedgerAggregate, iso
from domain.errors import CurrencyMismatch, InvalidInput, InvalidTransition
from domain.gateway import ChargeResult
from domain.invoicing import (
    Coupon,
    Line,
    compute_totals,
    discount_for,
    proration_lines,
    tax_line,
)
from domain.limits import MAX_QUANTITY, check_count
from domain.money import prorate
from domain.periods import (
    Interval,
    add_interval,
    monthly_amount,
    next_anchor_day,
    seconds_between,
    subtract_interval,
)
from domain.plan import Plan
from domain.pricing import Pricing, describe, price_for

LIVE = ("trialing", "active", "past_due")


class Subscription(LedgerAggregate):
    class Event(LedgerAggregate.Event):
        customer_id: str  # whose: every event of a customer is keyed alike on Kafka
        status: str
        mrr: int

        def apply(self, sub: Subscription) -> None:
            self.change(sub)
            sub.status = self.status
            sub.mrr = self.mrr

        def change(self, sub: Subscription) -> None:
            """The event's own effect on state, besides status and MRR."""

    class Subscribed(LedgerAggregate.Created, Event):
        subscription_id: str
        customer_id: str
        plan_id: str
        plan_version: int
        currency: str
        pricing: dict[str, Any]
        interval: dict[str, Any]
        quantity: int
        anchor: datetime
        period_start: datetime
        period_end: datetime
        trial_end: datetime | None
        coupon: dict[str, Any] | None
        coupon_periods_left: int | None

        def change(self, sub: Subscription) -> None:
            sub.subscription_id = self.subscription_id
            sub.customer_id = self.customer_id
            sub.plan_id = self.plan_id
            sub.plan_version = self.plan_version
            sub.currency = self.currency
            sub.pricing = Pricing.from_dict(self.pricing)
            sub.interval = Interval.from_dict(self.interval)
            sub.quantity = self.quantity
            sub.anchor = self.anchor
            sub.period_index = 0 if self.anchor == self.period_start else -1
            sub.period_start = self.period_start
            sub.period_end = self.period_end
            sub.trial_end = self.trial_end
            sub.coupon = Coupon.from_dict(self.coupon) if self.coupon else None
            sub.coupon_periods_left = self.coupon_periods_left
            sub.discounted = False
            sub.cancel_at_period_end = False
            sub.credit_balance = 0
            sub.open_invoices = {}
            sub.billed_through = None
            sub.period_invoice = None
            sub.reminded_for = None

    class TrialConverted(Event):
        period_start: datetime
        period_end: datetime

        def change(self, sub: Subscription) -> None:
            sub.anchor = self.period_start
            sub.period_index = 0
            sub.period_start = self.period_start
            sub.period_end = self.period_end

    class Renewed(Event):
        period_index: int
        period_start: datetime
        period_end: datetime
        plan_version: int
        pricing: dict[str, Any]

        def change(self, sub: Subscription) -> None:
            sub.period_index = self.period_index
            sub.period_start = self.period_start
            sub.period_end = self.period_end
            sub.plan_version = self.plan_version
            sub.pricing = Pricing.from_dict(self.pricing)

    class Invoiced(Event):
        currency: str
        number: str
        reason: str
        lines: list[dict[str, Any]]
        subtotal: int
        tax: int
        total: int
        credit_applied: int
        amount_due: int
        credit_balance_after: int
        period_start: datetime
        period_end: datetime
        discounted: bool
        coupon_periods_left: int | None

        def change(self, sub: Subscription) -> None:
            sub.credit_balance = self.credit_balance_after
            sub.discounted = self.discounted
            sub.coupon_periods_left = self.coupon_periods_left
            recurring = [ln["period_end"] for ln in self.lines if ln["kind"] == "recurring"]
            if recurring:
                sub.billed_through = max(recurring)
                sub.period_invoice = self.number
            if self.amount_due > 0:
                sub.open_invoices[self.number] = {
                    "amount_due": self.amount_due,
                    "failures": 0,
                    "first_failed_at": None,
                    "next_retry_at": None,
                }

    class PaymentSucceeded(Event):
        currency: str
        number: str
        amount: int
        attempt: int
        reference: str

        def change(self, sub: Subscription) -> None:
            sub.open_invoices.pop(self.number, None)

    class PaymentFailed(Event):
        currency: str
        number: str
        amount: int
        attempt: int
        reason: str
        reference: str  # the gateway's id of the declined charge ("" if none was made)
        next_retry_at: datetime | None

        def change(self, sub: Subscription) -> None:
            inv = sub.open_invoices[self.number]
            inv["failures"] = self.attempt
            inv["first_failed_at"] = inv["first_failed_at"] or self.timestamp
            inv["next_retry_at"] = self.next_retry_at

    class PlanChanged(Event):
        from_plan_id: str
        plan_id: str
        plan_version: int
        pricing: dict[str, Any]
        interval: dict[str, Any]
        quantity: int
        anchor: datetime
        period_start: datetime
        period_end: datetime
        reason: str

        def change(self, sub: Subscription) -> None:
            sub.plan_id = self.plan_id
            sub.plan_version = self.plan_version
            sub.pricing = Pricing.from_dict(self.pricing)
            sub.interval = Interval.from_dict(self.interval)
            sub.quantity = self.quantity
            if self.anchor != sub.anchor:
                sub.anchor = self.anchor
                sub.period_index = 0
                if sub.billed_through is not None:  # the unused rest was credited
                    sub.billed_through = min(sub.billed_through, self.anchor)
            sub.period_start = self.period_start
            sub.period_end = self.period_end

    class QuantityChanged(Event):
        quantity: int

        def change(self, sub: Subscription) -> None:
            sub.quantity = self.quantity

    class CancellationScheduled(Event):
        cancel_at: datetime
        reason: str

        def change(self, sub: Subscription) -> None:
            sub.cancel_at_period_end = True

    class Churned(Event):
        kind: str  # voluntary | involuntary
        reason: str
        written_off: list[str]

        def change(self, sub: Subscription) -> None:
            sub.cancel_at_period_end = False
            sub.open_invoices = {}
            if (
                self.kind == "involuntary"
                and sub.billed_through is not None
                and sub.period_invoice in self.written_off
            ):  # the period's own invoice was written off: its rest was never paid for
                sub.billed_through = min(sub.billed_through, self.timestamp)

    class Reactivated(Event):
        kind: str  # unscheduled (cancellation withdrawn) | restarted (after churn)
        anchor: datetime
        period_start: datetime
        period_end: datetime
        plan_version: int
        pricing: dict[str, Any]

        def change(self, sub: Subscription) -> None:
            sub.cancel_at_period_end = False
            if self.anchor != sub.anchor:
                sub.period_index = 0
            sub.anchor = self.anchor
            sub.period_start = self.period_start
            sub.period_end = self.period_end
            sub.plan_version = self.plan_version
            sub.pricing = Pricing.from_dict(self.pricing)

    class Paused(Event):
        def change(self, sub: Subscription) -> None:
            sub.paused_from = self.timestamp

    class Resumed(Event):
        anchor: datetime
        period_start: datetime
        period_end: datetime

        def change(self, sub: Subscription) -> None:
            if self.anchor != sub.anchor:
                sub.period_index = 0
            sub.anchor = self.anchor
            sub.period_start = self.period_start
            sub.period_end = self.period_end

    class RenewalReminderIssued(Event):
        currency: str
        renews_at: datetime
        expected_amount: int

        def change(self, sub: Subscription) -> None:
            sub.reminded_for = self.renews_at

    if TYPE_CHECKING:  # state set by the events; not constructor fields for eventsourcing
        subscription_id: str
        customer_id: str
        plan_id: str
        plan_version: int
        currency: str
        pricing: Pricing
        interval: Interval
        quantity: int
        status: str
        mrr: int
        anchor: datetime
        period_index: int
        period_start: datetime
        period_end: datetime
        trial_end: datetime | None
        coupon: Coupon | None
        coupon_periods_left: int | None
        discounted: bool
        cancel_at_period_end: bool
        credit_balance: int
        open_invoices: dict[str, dict[str, Any]]
        billed_through: datetime | None
        period_invoice: str | None
        reminded_for: datetime | None
        paused_from: datetime

    def emit(self, event_class: type[Any], at: datetime, meta: dict, **fields: Any) -> None:
        super().emit(event_class, at, meta, customer_id=self.customer_id, **fields)

    # ---- creation -------------------------------------------------------------------

    @classmethod
    def subscribe(
        cls,
        *,
        id: UUID,
        subscription_id: str,
        customer_id: str,
        plan: Plan,
        quantity: int,
        coupon: Coupon | None,
        anchor_day: int | None,
        at: datetime,
        meta: dict,
    ) -> Subscription:
        plan.check_open()
        check_quantity(quantity, plan)
        if coupon and coupon.amount_off is not None and coupon.currency != plan.currency:
            raise InvalidInput(
                f"coupon '{coupon.code}' is in {coupon.currency}, the plan in {plan.currency}"
            )
        trial_end = at + timedelta(days=plan.trial_days) if plan.trial_days else None
        if trial_end:
            anchor, start, end, status = trial_end, at, trial_end, "trialing"
        elif anchor_day:
            anchor = next_anchor_day(at, anchor_day)
            start, end, status = at, anchor, "active"
        else:
            anchor, start, status = at, at, "active"
            end = add_interval(at, plan.interval, 1)
        periods_left = None
        if coupon:
            periods_left = {"once": 1, "repeating": coupon.periods}.get(coupon.duration)
        return cls._create(
            cls.Subscribed,
            id=id,
            timestamp=at,
            meta=meta,
            subscription_id=subscription_id,
            customer_id=customer_id,
            plan_id=plan.plan_id,
            plan_version=plan.price_version,
            currency=plan.currency,
            pricing=plan.pricing.to_dict(),
            interval=plan.interval.to_dict(),
            quantity=quantity,
            anchor=anchor,
            period_start=start,
            period_end=end,
            trial_end=trial_end,
            coupon=coupon.to_dict() if coupon else None,
            coupon_periods_left=periods_left,
            status=status,
            mrr=mrr_of(
                status=status,
                pricing=plan.pricing,
                quantity=quantity,
                interval=plan.interval,
                currency=plan.currency,
                coupon=coupon,
                discounted=coupon is not None and coupon.duration != "once",
            ),
        )

    # ---- what the subscription is worth ---------------------------------------------

    def recurring_amount(self, pricing: Pricing | None = None, quantity: int | None = None) -> int:
        return price_for(pricing or self.pricing, quantity or self.quantity)

    def monthly_value(
        self,
        *,
        status: str,
        pricing: Pricing | None = None,
        quantity: int | None = None,
        interval: Interval | None = None,
        discounted: bool | None = None,
    ) -> int:
        return mrr_of(
            status=status,
            pricing=pricing or self.pricing,
            quantity=quantity or self.quantity,
            interval=interval or self.interval,
            currency=self.currency,
            coupon=self.coupon,
            discounted=self.discounted if discounted is None else discounted,
        )

    def _will_discount(self) -> bool:
        if not self.coupon:
            return False
        return self.coupon.duration == "forever" or (self.coupon_periods_left or 0) > 0

    # ---- invoicing --------------------------------------------------------------------

    def recurring_lines(self, plan_name: str) -> list[Line]:
        """The current period's recurring line (prorated when it is a partial first period)."""
        amount = self.recurring_amount()
        if self.period_index < 0:  # calendar-anchored partial first period
            amount = prorate(  # over the full period the partial one is a part of
                amount,
                seconds_between(self.period_start, self.period_end),
                seconds_between(subtract_interval(self.anchor, self.interval), self.anchor),
            )
        desc = f"{plan_name} ({describe(self.pricing, self.quantity, self.currency)})"
        lines = [Line("recurring", desc, amount, self.period_start, self.period_end)]
        if self._will_discount():
            assert self.coupon is not None
            off = discount_for(self.coupon, amount, self.currency)
            if off:
                lines.append(
                    Line(
                        "discount",
                        f"Coupon {self.coupon.code}",
                        off,
                        self.period_start,
                        self.period_end,
                    )
                )
        return lines

    def check_not_billed(self, start: datetime) -> None:
        if self.billed_through is not None and start < self.billed_through:
            raise InvalidTransition(
                f"subscription '{self.subscription_id}': the period from {iso(start)} is already"
                f" billed (through {iso(self.billed_through)})"
            )

    def issue_invoice(
        self,
        *,
        number: str,
        reason: str,
        lines: list[Line],
        tax_rate_ppm: int,
        country: str,
        at: datetime,
        meta: dict,
    ) -> Invoiced:
        recurring = any(line.kind == "recurring" for line in lines)
        if recurring:
            self.check_not_billed(self.period_start)
        subtotal = sum(line.amount for line in lines)
        tax = tax_line(subtotal, tax_rate_ppm, country)
        all_lines = [*lines, tax] if tax else list(lines)
        totals = compute_totals(all_lines, tax_rate_ppm, self.credit_balance)
        discounted = (
            any(line.kind == "discount" for line in lines) if recurring else self.discounted
        )
        periods_left = self.coupon_periods_left
        if recurring and discounted and periods_left is not None:
            periods_left -= 1
        period_start = min(line.period_start for line in lines if line.period_start)
        period_end = max(line.period_end for line in lines if line.period_end)
        self.emit(
            self.Invoiced,
            at,
            meta,
            currency=self.currency,
            number=number,
            reason=reason,
            lines=[line.to_dict() for line in all_lines],
            subtotal=totals.subtotal,
            tax=totals.tax,
            total=totals.total,
            credit_applied=totals.credit_applied,
            amount_due=totals.amount_due,
            credit_balance_after=totals.credit_balance_after,
            period_start=period_start,
            period_end=period_end,
            discounted=discounted,
            coupon_periods_left=periods_left,
            status=self.status,
            mrr=self.monthly_value(status=self.status, discounted=discounted),
        )
        return self.pending_events[-1]  # type: ignore[return-value]

    # ---- payments ---------------------------------------------------------------------

    def check_open_invoice(self, number: str) -> dict[str, Any]:
        invoice = self.open_invoices.get(number)
        if invoice is None:
            raise InvalidTransition(f"invoice {number} is not open on this subscription")
        return invoice

    def next_attempt(self, number: str) -> int:
        return self.check_open_invoice(number)["failures"] + 1

    def record_charge(
        self,
        *,
        number: str,
        result: ChargeResult,
        attempt: int,
        next_retry_at: datetime | None,
        at: datetime,
        meta: dict,
    ) -> None:
        invoice = self.check_open_invoice(number)
        amount = invoice["amount_due"]
        if result.succeeded:
            self._paid(number, amount, attempt, result.reference, at, meta)
            return
        status = "past_due" if self.status in ("active", "past_due") else self.status
        self.emit(
            self.PaymentFailed,
            at,
            meta,
            currency=self.currency,
            number=number,
            amount=amount,
            attempt=attempt,
            reason=result.reason or "declined",
            reference=result.reference,
            next_retry_at=next_retry_at,
            status=status,
            mrr=self.monthly_value(status=status),
        )
        if next_retry_at is None and self.status in LIVE:
            self.churn("involuntary", f"payment_failed:{result.reason or 'declined'}", at, meta)

    def record_payment(
        self,
        number: str,
        amount: int,
        reference: str,
        at: datetime,
        meta: dict,
        currency: str | None = None,
    ) -> None:
        invoice = self.check_open_invoice(number)
        if currency is not None and currency != self.currency:
            raise CurrencyMismatch(
                f"invoice {number} is in {self.currency}; a {currency} payment cannot settle it"
            )
        if not reference.strip():
            raise InvalidInput("a payment needs a reference (the bank's or payments team's)")
        if amount != invoice["amount_due"]:
            raise InvalidInput(
                f"invoice {number} has {invoice['amount_due']} due; partial or excess "
                "payments are not accepted"
            )
        self._paid(number, amount, invoice["failures"] + 1, reference, at, meta)

    def _paid(
        self, number: str, amount: int, attempt: int, reference: str, at: datetime, meta: dict
    ) -> None:
        others_failing = any(
            inv["failures"] for n, inv in self.open_invoices.items() if n != number
        )
        status = self.status
        if status == "past_due" and not others_failing:
            status = "active"
        self.emit(
            self.PaymentSucceeded,
            at,
            meta,
            currency=self.currency,
            number=number,
            amount=amount,
            attempt=attempt,
            reference=reference,
            status=status,
            mrr=self.monthly_value(status=status),
        )

    # ---- the schedule -----------------------------------------------------------------

    def next_due(self, reminder_days: int, remind_all: bool) -> tuple[datetime, int, str] | None:
        """The earliest thing due on this subscription: (when, priority, what)."""
        due: list[tuple[datetime, int, str]] = []
        if self.status in ("active", "past_due"):
            for number, inv in self.open_invoices.items():
                if inv["next_retry_at"] is not None:
                    due.append((inv["next_retry_at"], 0, f"retry:{number}"))
            due.append((self.period_end, 3, "renew"))
            wants_reminder = remind_all or self.interval.unit == "year"
            if (
                wants_reminder
                and reminder_days > 0
                and not self.cancel_at_period_end
                and self.reminded_for != self.period_end
            ):
                remind_at = max(self.period_end - timedelta(days=reminder_days), self.period_start)
                due.append((remind_at, 1, "remind"))
        elif self.status == "trialing":
            due.append((self.period_end, 2, "trial_end"))
        return min(due) if due else None

    def convert_trial(self, at: datetime, meta: dict) -> None:
        if self.status != "trialing":
            raise InvalidTransition("subscription is not trialing")
        end = add_interval(self.period_end, self.interval, 1)
        self.emit(
            self.TrialConverted,
            at,
            meta,
            period_start=self.period_end,
            period_end=end,
            status="active",
            mrr=self.monthly_value(status="active", discounted=self._will_discount()),
        )

    def renew(self, at: datetime, plan: Plan, meta: dict) -> None:
        if self.status not in ("active", "past_due"):
            raise InvalidTransition(f"a {self.status} subscription does not renew")
        index = self.period_index + 1
        start = self.period_end
        end = add_interval(self.anchor, self.interval, index + 1)
        version = plan.migrated_version_after(self.plan_version, at) or self.plan_version
        pricing = plan.pricing_at(version) if version != self.plan_version else self.pricing
        self.emit(
            self.Renewed,
            at,
            meta,
            period_index=index,
            period_start=start,
            period_end=end,
            plan_version=version,
            pricing=pricing.to_dict(),
            status=self.status,
            mrr=self.monthly_value(
                status=self.status, pricing=pricing, discounted=self._will_discount()
            ),
        )

    def remind(self, at: datetime, meta: dict) -> None:
        self.emit(
            self.RenewalReminderIssued,
            at,
            meta,
            currency=self.currency,
            renews_at=self.period_end,
            expected_amount=self.recurring_amount(),
            status=self.status,
            mrr=self.mrr,
        )

    # ---- changes asked for by the customer --------------------------------------------

    def change_plan(
        self,
        *,
        plan: Plan,
        quantity: int,
        plan_name_old: str,
        at: datetime,
        meta: dict,
        reason: str = "customer_request",
        pricing: Pricing | None = None,
        plan_version: int | None = None,
    ) -> list[Line]:
        """Move to another plan or quantity now; returns the lines to invoice (prorated)."""
        self.check_live()
        check_quantity(quantity, plan, pricing)
        if plan.currency != self.currency:
            raise InvalidInput(
                f"plan '{plan.plan_id}' is in {plan.currency}, this subscription in {self.currency}"
            )
        pricing = pricing or plan.pricing
        version = plan_version or plan.price_version
        if (
            plan.plan_id == self.plan_id
            and quantity == self.quantity
            and version == self.plan_version
        ):
            raise InvalidInput("that is the subscription's current plan and quantity")
        if plan.plan_id != self.plan_id:
            plan.check_open()
        if not self.period_start <= at <= self.period_end:
            raise InvalidTransition(f"{iso(at)} is outside the current period")
        old_amount = self.recurring_amount()
        new_amount = price_for(pricing, quantity)
        old_desc = f"{plan_name_old} ({describe(self.pricing, self.quantity, self.currency)})"
        new_desc = f"{plan.name} ({describe(pricing, quantity, self.currency)})"
        trialing = self.status == "trialing"
        if plan.interval == self.interval or trialing:
            anchor, start, end = self.anchor, self.period_start, self.period_end
            if trialing:
                lines: list[Line] = []
            else:
                lines = proration_lines(
                    old_amount,
                    new_amount,
                    self.period_start,
                    self.period_end,
                    at,
                    old_desc,
                    new_desc,
                )
        else:  # a new interval starts a new billing cycle now, crediting the unused time
            anchor, start, end = at, at, add_interval(at, plan.interval, 1)
            lines = [
                ln
                for ln in proration_lines(
                    old_amount, 0, self.period_start, self.period_end, at, old_desc, new_desc
                )
                if ln.kind == "proration_credit"
            ]
        if plan.plan_id == self.plan_id and version == self.plan_version:
            self.emit(
                self.QuantityChanged,
                at,
                meta,
                quantity=quantity,
                status=self.status,
                mrr=self.monthly_value(status=self.status, quantity=quantity),
            )
            return lines
        self.emit(
            self.PlanChanged,
            at,
            meta,
            from_plan_id=self.plan_id,
            plan_id=plan.plan_id,
            plan_version=version,
            pricing=pricing.to_dict(),
            interval=plan.interval.to_dict(),
            quantity=quantity,
            anchor=anchor,
            period_start=start,
            period_end=end,
            reason=reason,
            status=self.status,
            mrr=self.monthly_value(
                status=self.status, pricing=pricing, quantity=quantity, interval=plan.interval
            ),
        )
        if anchor == at and not trialing:  # the new cycle's first period, billed now
            lines = [*lines, *self.recurring_lines(plan.name)]
        return lines

    def check_live(self) -> None:
        if self.status not in LIVE:
            raise InvalidTransition(f"subscription '{self.subscription_id}' is {self.status}")

    def cancel(self, *, immediately: bool, reason: str, at: datetime, meta: dict) -> None:
        self.check_live()
        if immediately:
            self.churn("voluntary", reason, at, meta)
            return
        if self.cancel_at_period_end:
            raise InvalidTransition("cancellation is already scheduled")
        self.emit(
            self.CancellationScheduled,
            at,
            meta,
            cancel_at=self.period_end,
            reason=reason,
            status=self.status,
            mrr=self.mrr,
        )

    def churn(self, kind: str, reason: str, at: datetime, meta: dict) -> None:
        self.emit(
            self.Churned,
            at,
            meta,
            kind=kind,
            reason=reason,
            written_off=sorted(self.open_invoices),
            status="canceled",
            mrr=0,
        )

    def _next_cycle(self, at: datetime) -> tuple[datetime, datetime, datetime, bool]:
        """(anchor, start, end, new): keep a period already paid for, else start one at `at`."""
        if self.billed_through is not None and at < self.billed_through:
            return self.anchor, self.period_start, self.period_end, False
        return at, at, add_interval(at, self.interval, 1), True

    def reactivate(self, *, plan: Plan, at: datetime, meta: dict) -> bool:
        """Withdraw a scheduled cancellation, or restart after churn; True if a new period."""
        if self.status in LIVE and self.cancel_at_period_end:
            self.emit(
                self.Reactivated,
                at,
                meta,
                kind="unscheduled",
                anchor=self.anchor,
                period_start=self.period_start,
                period_end=self.period_end,
                plan_version=self.plan_version,
                pricing=self.pricing.to_dict(),
                status=self.status,
                mrr=self.mrr,
            )
            return False
        if self.status != "canceled":
            raise InvalidTransition(
                "only a canceled subscription or a scheduled cancellation can be reactivated"
            )
        anchor, start, end, new = self._next_cycle(at)
        version, pricing = self.plan_version, self.pricing
        if new:
            plan.check_open()
            version, pricing = plan.price_version, plan.pricing
        self.emit(
            self.Reactivated,
            at,
            meta,
            kind="restarted",
            anchor=anchor,
            period_start=start,
            period_end=end,
            plan_version=version,
            pricing=pricing.to_dict(),
            status="active",
            mrr=self.monthly_value(
                status="active",
                pricing=pricing,
                discounted=self.discounted if not new else self._will_discount(),
            ),
        )
        return new

    def pause(self, at: datetime, meta: dict) -> None:
        if self.status != "active":
            raise InvalidTransition(
                f"only an active subscription can be paused (this one is {self.status})"
            )
        self.emit(self.Paused, at, meta, status="paused", mrr=0)

    def resume(self, at: datetime, meta: dict) -> bool:
        """Resume billing; True if a new period starts (and must be invoiced)."""
        if self.status != "paused":
            raise InvalidTransition("subscription is not paused")
        anchor, start, end, new = self._next_cycle(at)
        self.emit(
            self.Resumed,
            at,
            meta,
            anchor=anchor,
            period_start=start,
            period_end=end,
            status="active",
            mrr=self.monthly_value(
                status="active", discounted=self.discounted if not new else self._will_discount()
            ),
        )
        return new


def mrr_of(
    *,
    status: str,
    pricing: Pricing,
    quantity: int,
    interval: Interval,
    currency: str,
    coupon: Coupon | None,
    discounted: bool,
) -> int:
    """MRR: the recurring amount after lasting discounts, normalised to a month.

    Trialing, paused and canceled subscriptions bring no MRR; a one-off coupon does not
    lower it (it is not recurring), a repeating one does while it lasts.
    """
    if status not in ("active", "past_due"):
        return 0
    amount = price_for(pricing, quantity)
    if coupon and coupon.duration != "once" and discounted:
        amount += discount_for(coupon, amount, currency)
    return monthly_amount(amount, interval)


def check_quantity(quantity: int, plan: Plan, pricing: Pricing | None = None) -> None:
    """A quantity always means something: a flat price is for exactly one."""
    check_count(quantity, "quantity", 1, MAX_QUANTITY)
    if (pricing or plan.pricing).model == "flat" and quantity != 1:
        raise InvalidInput(
            f"plan '{plan.plan_id}' has a flat price: its quantity is 1 (a per-seat plan"
            " is defined with --pricing per_unit)"
        )
