"""The subscription aggregate: its events, its state and the rules every change obeys.

What it does is split by job: billing.py (invoice lines, issuing), payments.py (charges and
payments), schedule.py (what falls due: renewals, reminders, trial ends), changes.py (plan
changes, cancellation, pause, reactivation), mrr.py (its monthly value).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from domain.base import LedgerAggregate, iso
from domain.catalog.plan import Plan
from domain.errors import CurrencyMismatch, InvalidInput, InvalidTransition
from domain.invoicing import Coupon
from domain.limits import MAX_QUANTITY, check_count
from domain.periods import Interval, add_interval, next_anchor_day
from domain.pricing import Pricing, price_for
from domain.subscription import events
from domain.subscription.billing import CreditNote, Refundable
from domain.subscription.mrr import mrr_of
from domain.subscription.status import LIVE, PAYING, OpenInvoice, PendingCharge, Status
from domain.topics import register_moved


@register_moved
class Subscription(LedgerAggregate):
    """The design card's aggregate, from Subscribed to Churned (and back, if reactivated)."""

    # eventsourcing redefines each as Subscription.<Name> (stored topic
    # `domain.subscription.aggregate:Subscription.<Name>`), keeping the fields in order
    Subscribed = events.Subscribed
    TrialConverted = events.TrialConverted
    Renewed = events.Renewed
    Invoiced = events.Invoiced
    PaymentSucceeded = events.PaymentSucceeded
    PaymentFailed = events.PaymentFailed
    PlanChanged = events.PlanChanged
    QuantityChanged = events.QuantityChanged
    CancellationScheduled = events.CancellationScheduled
    Churned = events.Churned
    Reactivated = events.Reactivated
    Paused = events.Paused
    Resumed = events.Resumed
    RenewalReminderIssued = events.RenewalReminderIssued
    ChargeRequested = events.ChargeRequested
    CreditNoteIssued = events.CreditNoteIssued
    RefundRequested = events.RefundRequested
    RefundSucceeded = events.RefundSucceeded
    RefundFailed = events.RefundFailed
    CreditMovedToCustomer = events.CreditMovedToCustomer
    if TYPE_CHECKING:
        refundable: dict[str, Refundable]  # invoices with money due, what refunds need
        credit_notes: dict[str, CreditNote]  # credit notes issued on this subscription
    TrialEndingSoon = events.TrialEndingSoon

    if TYPE_CHECKING:  # state set by the events; not constructor fields for eventsourcing
        subscription_id: str
        customer_id: str
        plan_id: str
        plan_version: int
        currency: str
        pricing: Pricing
        interval: Interval
        quantity: int
        status: Status
        mrr: int
        anchor: datetime
        period_index: int  # -1: a partial first period up to a calendar anchor
        period_start: datetime
        period_end: datetime
        trial_end: datetime | None
        coupon: Coupon | None
        coupon_periods_left: int | None
        discounted: bool
        cancel_at_period_end: bool
        credit_balance: int
        open_invoices: dict[str, OpenInvoice]
        charging: dict[str, PendingCharge]  # charges pending at the gateway, by invoice
        billed_through: datetime | None
        period_invoice: str | None
        reminded_for: datetime | None

    def emit(self, event_class: type[Any], at: datetime, meta: dict, **fields: Any) -> None:
        super().emit(event_class, at, meta, customer_id=self.customer_id, **fields)

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
        cls.check_quantity(quantity, plan)
        cls.check_coupon_currency(coupon, plan)
        trial_end = at + timedelta(days=plan.trial_days) if plan.trial_days else None
        if trial_end:
            anchor, start, end, status = trial_end, at, trial_end, Status.TRIALING
        elif anchor_day:
            anchor = next_anchor_day(at, anchor_day)
            start, end, status = at, anchor, Status.ACTIVE
        else:
            anchor, start, status = at, at, Status.ACTIVE
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

    def churn(self, kind: str, reason: str, at: datetime, meta: dict) -> None:
        """End the subscription now (voluntary or involuntary), writing off what is open."""
        self.emit(
            self.Churned,
            at,
            meta,
            kind=kind,
            reason=reason,
            written_off=sorted(self.open_invoices),
            status=Status.CANCELED,
            mrr=0,
        )

    # ---- what the subscription is worth ---------------------------------------------

    def recurring_amount(self) -> int:
        """What one full period costs at the current price and quantity, before discounts."""
        return price_for(self.pricing, self.quantity)

    def monthly_value(
        self,
        *,
        status: Status,
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

    def will_discount(self) -> bool:
        """Whether the coupon still applies to the next recurring invoice."""
        if not self.coupon:
            return False
        return self.coupon.duration == "forever" or (self.coupon_periods_left or 0) > 0

    # ---- the rules ----------------------------------------------------------------------

    @staticmethod
    def check_quantity(quantity: int, plan: Plan, pricing: Pricing | None = None) -> None:
        """A quantity always means something: a flat price is for exactly one."""
        check_count(quantity, "quantity", 1, MAX_QUANTITY)
        if (pricing or plan.pricing).model == "flat" and quantity != 1:
            raise InvalidInput(
                f"plan '{plan.plan_id}' has a flat price: its quantity is 1 (a per-seat plan"
                " is defined with --pricing per_unit)"
            )

    @staticmethod
    def check_coupon_currency(coupon: Coupon | None, plan: Plan) -> None:
        if coupon and coupon.amount_off is not None and coupon.currency != plan.currency:
            raise InvalidInput(
                f"coupon '{coupon.code}' is in {coupon.currency}, the plan in {plan.currency}"
            )

    def check_plan_currency(self, plan: Plan) -> None:
        if plan.currency != self.currency:
            raise InvalidInput(
                f"plan '{plan.plan_id}' is in {plan.currency}, this subscription in {self.currency}"
            )

    def check_live(self) -> None:
        if self.status not in LIVE:
            raise InvalidTransition(f"subscription '{self.subscription_id}' is {self.status}")

    def check_paying(self) -> None:
        if self.status not in PAYING:
            raise InvalidTransition(f"a {self.status} subscription does not renew")

    def check_status(self, status: Status, message: str) -> None:
        if self.status != status:
            raise InvalidTransition(message)

    def check_in_period(self, at: datetime) -> None:
        if not self.period_start <= at <= self.period_end:
            raise InvalidTransition(f"{iso(at)} is outside the current period")

    def check_not_billed(self, start: datetime) -> None:
        if self.billed_through is not None and start < self.billed_through:
            raise InvalidTransition(
                f"subscription '{self.subscription_id}': the period from {iso(start)} is already"
                f" billed (through {iso(self.billed_through)})"
            )

    def check_open_invoice(self, number: str) -> OpenInvoice:
        invoice = self.open_invoices.get(number)
        if invoice is None:
            raise InvalidTransition(f"invoice {number} is not open on this subscription")
        return invoice

    def check_settles(self, number: str, amount: int, reference: str, currency: str | None) -> None:
        """A payment recorded by hand settles exactly one open invoice, in its currency."""
        invoice = self.check_open_invoice(number)
        if currency is not None and currency != self.currency:
            raise CurrencyMismatch(
                f"invoice {number} is in {self.currency}; a {currency} payment cannot settle it"
            )
        if not reference.strip():
            raise InvalidInput("a payment needs a reference (the bank's or payments team's)")
        if amount != invoice.amount_due:
            raise InvalidInput(
                f"invoice {number} has {invoice.amount_due} due; partial or excess "
                "payments are not accepted"
            )
