"""The subscription's events: what happened, and how each one changes the state.

Plain classes here; `Subscription` (aggregate.py) declares each one, and eventsourcing
redefines it there as `Subscription.<Name>`, the class (and stored topic) in use. Every
event carries the subscription's `status` and `mrr` after it, so a consumer of the events
topic never has to re-derive billing state to follow the book.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from domain.base import LedgerAggregate
from domain.invoicing import Coupon
from domain.periods import Interval
from domain.pricing import Pricing
from domain.subscription.billing import (
    FAILED,
    MANUAL_PAYMENT,
    PENDING,
    REFUND,
    SUCCEEDED,
    CreditNote,
    Refundable,
)
from domain.subscription.status import OpenInvoice, PendingCharge, Status

if TYPE_CHECKING:
    from domain.subscription.aggregate import Subscription


class Event(LedgerAggregate.Event):
    customer_id: str  # whose: every event of a customer is keyed alike on Kafka
    status: str
    mrr: int

    def apply(self, sub: Subscription) -> None:
        self.change(sub)
        sub.status = Status(self.status)
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
        sub.charging = {}  # charges pending at the gateway, by invoice number
        sub.refundable = {}  # credit: invoices with money due, by number (what refunds need)
        sub.credit_notes = {}  # credit: credit notes issued here, by number
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
    class_version = 2  # v2: customer_credit (credit belongs to the customer)

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
    customer_credit: bool | None  # True: the credit fields are the customer's balance

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["customer_credit"] = False  # before 0.3 the credit was the subscription's

    def change(self, sub: Subscription) -> None:
        if not self.customer_credit:
            sub.credit_balance = self.credit_balance_after
        sub.discounted = self.discounted
        sub.coupon_periods_left = self.coupon_periods_left
        recurring = [ln["period_end"] for ln in self.lines if ln["kind"] == "recurring"]
        if recurring:
            sub.billed_through = max(recurring)
            sub.period_invoice = self.number
        if self.amount_due > 0:
            sub.open_invoices[self.number] = OpenInvoice(self.amount_due)
            sub.refundable[self.number] = Refundable(self.total, self.tax)


class PaymentSucceeded(Event):
    currency: str
    number: str
    amount: int
    attempt: int
    reference: str

    def change(self, sub: Subscription) -> None:
        sub.open_invoices.pop(self.number, None)
        sub.charging.pop(self.number, None)
        paid = sub.refundable.get(self.number)
        if paid is not None:  # paid by hand (RecordPayment) or through the gateway
            by_gateway = self.meta.get("command") != MANUAL_PAYMENT
            sub.refundable[self.number] = paid.settled(self.amount, self.reference, by_gateway)


class PaymentFailed(Event):
    class_version = 2  # v2: the gateway's decline message

    currency: str
    number: str
    amount: int
    attempt: int
    reason: str  # the decline code (card_declined, insufficient_funds, ...)
    reference: str  # the gateway's id of the declined charge ("" if none was made)
    next_retry_at: datetime | None
    message: str | None  # the gateway's words for the decline; None before v2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["message"] = None

    def change(self, sub: Subscription) -> None:
        sub.charging.pop(self.number, None)
        invoice = sub.open_invoices.get(self.number)
        if invoice is not None:  # else written off while its charge was pending
            sub.open_invoices[self.number] = invoice.failed(
                self.attempt, self.timestamp, self.next_retry_at
            )


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
    """Billing stops: no renewals, no MRR, until Resumed."""


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


class ChargeRequested(Event):
    """The ledger asks for a charge; the payments worker makes it after commit, with this key."""

    currency: str
    number: str
    attempt: int
    amount: int
    idempotency_key: str  # invoice + attempt: a redone transaction asks for the same charge

    def change(self, sub: Subscription) -> None:
        invoice = sub.open_invoices.get(self.number)
        if invoice is not None:
            sub.open_invoices[self.number] = invoice.requested(self.attempt)
        sub.charging[self.number] = PendingCharge(self.attempt, self.amount)


class CreditNoteIssued(Event):
    """A credit note against a paid invoice: refunded at the gateway, or to the customer's
    credit (`method`); numbered in its own gapless series (CN-000001)."""

    currency: str
    number: str
    invoice: str
    lines: list[dict[str, Any]]
    amount: int
    reason: str
    method: str  # refund (through the gateway) | credit (to the customer's balance)

    def change(self, sub: Subscription) -> None:
        sub.refundable[self.invoice] = sub.refundable[self.invoice].credit(self.amount)
        status = PENDING if self.method == REFUND else ""
        sub.credit_notes[self.number] = CreditNote(self.invoice, self.amount, self.method, status)


class RefundRequested(Event):
    """The ledger asks for a refund; the payments worker makes it after commit, with this key."""

    currency: str
    credit_note: str
    invoice_number: str
    charge_reference: str  # the gateway's charge being refunded
    amount: int
    idempotency_key: str  # from the credit note's number: a retry asks for the same refund


class RefundSucceeded(Event):
    currency: str
    credit_note: str
    invoice_number: str
    amount: int
    reference: str  # the gateway's refund id

    def change(self, sub: Subscription) -> None:
        note = sub.credit_notes[self.credit_note]
        sub.credit_notes[self.credit_note] = replace(note, status=SUCCEEDED)


class RefundFailed(Event):
    """The gateway refused the refund: the credit note stands, its amount is the customer's
    credit (a Customer.CreditGranted in the same transaction)."""

    currency: str
    credit_note: str
    invoice_number: str
    amount: int
    failure_code: str
    failure_message: str

    def change(self, sub: Subscription) -> None:
        note = sub.credit_notes[self.credit_note]
        sub.credit_notes[self.credit_note] = replace(note, status=FAILED)


class CreditMovedToCustomer(Event):
    """Credit an earlier version kept on this subscription now belongs to its customer."""

    currency: str
    amount: int

    def change(self, sub: Subscription) -> None:
        sub.credit_balance = 0


class TrialEndingSoon(Event):
    """A trial ends soon (domain/subscription/schedule.py: `ReminderLeads.trial_days`)."""

    currency: str
    trial_end: datetime
    expected_amount: int

    def change(self, sub: Subscription) -> None:
        sub.reminded_for = self.trial_end
