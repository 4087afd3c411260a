"""Commands: imperative requests from upstream, each with an id and an effective time.

A command checks its own fields when it is built (ranges in `domain.limits`), so a Kafka
message or a CLI line that breaks them is refused before anything is looked up. The
envelope every command shares (`Command`: id, time, who, digest) is domain.envelope.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from domain import limits as lim
from domain.catalog.plan import APPLY_TO
from domain.envelope import Command
from domain.errors import InvalidInput


def _owner(customer_id: str | None) -> None:
    if customer_id is not None:
        lim.check_id(customer_id, "customer_id")


def _pricing(pricing: object) -> None:
    from domain.pricing import Pricing

    if not isinstance(pricing, dict):
        raise InvalidInput("pricing must be a record (model, amount, tiers)")
    Pricing.from_dict(pricing)


@dataclass(frozen=True, kw_only=True)
class DefinePlan(Command):
    plan_id: str
    name: str
    currency: str
    pricing: dict[str, Any]
    interval: str = "month"
    interval_count: int = 1
    trial_days: int = 0
    features: tuple[str, ...] = ()

    def check(self) -> None:
        from domain.periods import Interval

        lim.check_id(self.plan_id, "plan_id")
        lim.check_text(self.name, "the plan's name", limit=lim.MAX_ID)
        _pricing(self.pricing)
        Interval.parse(self.interval, self.interval_count)
        lim.check_count(self.trial_days, "trial_days", 0, lim.MAX_TRIAL_DAYS)
        if not isinstance(self.features, tuple | list) or len(self.features) > lim.MAX_FEATURES:
            raise InvalidInput(f"a plan has at most {lim.MAX_FEATURES} features")
        for feature in self.features:
            lim.check_text(feature, "a feature", limit=lim.MAX_ID)


@dataclass(frozen=True, kw_only=True)
class ChangePlanPrice(Command):
    plan_id: str
    pricing: dict[str, Any]
    apply_to: str = "new"  # new | at_renewal | immediately

    def check(self) -> None:
        lim.check_id(self.plan_id, "plan_id")
        _pricing(self.pricing)
        if self.apply_to not in APPLY_TO:
            raise InvalidInput(f"apply_to must be one of {', '.join(APPLY_TO)}")


@dataclass(frozen=True, kw_only=True)
class RetirePlan(Command):
    plan_id: str

    def check(self) -> None:
        lim.check_id(self.plan_id, "plan_id")


@dataclass(frozen=True, kw_only=True)
class RegisterCustomer(Command):
    customer_id: str
    name: str
    email: str
    payment_token: str
    country: str = "US"
    preferences: dict[str, str] = field(default_factory=dict)

    def check(self) -> None:
        from domain.customer import check_profile

        lim.check_id(self.customer_id, "customer_id")
        check_profile(
            name=self.name,
            email=self.email,
            country=self.country,
            payment_token=self.payment_token,
            preferences=self.preferences,
        )


@dataclass(frozen=True, kw_only=True)
class UpdateCustomer(Command):
    customer_id: str
    name: str | None = None
    email: str | None = None
    payment_token: str | None = None
    country: str | None = None
    preferences: dict[str, str] | None = None  # set these keys; the others stay as they are

    def check(self) -> None:
        from domain.customer import check_profile

        lim.check_id(self.customer_id, "customer_id")
        fields = (self.name, self.email, self.payment_token, self.country, self.preferences)
        if all(v is None or v == {} for v in fields):
            raise InvalidInput(
                "nothing to update: give a name, email, payment token, country or preference"
            )
        check_profile(
            name=self.name,
            email=self.email,
            country=self.country,
            payment_token=self.payment_token,
            preferences=self.preferences,
        )


@dataclass(frozen=True, kw_only=True)
class EraseCustomer(Command):
    customer_id: str

    def check(self) -> None:
        lim.check_id(self.customer_id, "customer_id")


@dataclass(frozen=True, kw_only=True)
class DefineCoupon(Command):
    code: str
    percent_off_bp: int | None = None
    amount_off: int | None = None
    currency: str | None = None
    duration: str = "once"  # once | repeating | forever
    periods: int | None = None

    def check(self) -> None:
        from domain.invoicing import Coupon

        lim.check_id(self.code, "code")
        Coupon(
            code=self.code,
            percent_off_bp=self.percent_off_bp,
            amount_off=self.amount_off,
            currency=self.currency,
            duration=self.duration,
            periods=self.periods,
        )


@dataclass(frozen=True, kw_only=True)
class SetTaxRate(Command):
    country: str
    rate_ppm: int

    def check(self) -> None:
        lim.check_country(self.country)
        lim.check_count(self.rate_ppm, "rate_ppm (a tax rate in parts per million)", 0, 1_000_000)


@dataclass(frozen=True, kw_only=True)
class Subscribe(Command):
    customer_id: str
    plan_id: str
    subscription_id: str
    quantity: int = 1
    coupon: str | None = None
    anchor_day: int | None = None

    def check(self) -> None:
        lim.check_id(self.customer_id, "customer_id")
        lim.check_id(self.plan_id, "plan_id")
        lim.check_id(self.subscription_id, "subscription_id")
        lim.check_count(self.quantity, "quantity", 1, lim.MAX_QUANTITY)
        if self.coupon is not None:
            lim.check_id(self.coupon, "coupon")
        if self.anchor_day is not None:
            # days 29-31 would drift to the 28th-30th after a short month
            lim.check_count(self.anchor_day, "the billing anchor day (anchor_day)", 1, 28)


@dataclass(frozen=True, kw_only=True)
class ChangePlan(Command):
    subscription_id: str
    plan_id: str
    quantity: int | None = None
    customer_id: str | None = None  # the Kafka key; must own the subscription

    def check(self) -> None:
        lim.check_id(self.subscription_id, "subscription_id")
        lim.check_id(self.plan_id, "plan_id")
        if self.quantity is not None:
            lim.check_count(self.quantity, "quantity", 1, lim.MAX_QUANTITY)
        _owner(self.customer_id)


@dataclass(frozen=True, kw_only=True)
class Cancel(Command):
    subscription_id: str
    immediately: bool = False
    reason: str = "customer_request"
    customer_id: str | None = None  # the Kafka key; must own the subscription

    def check(self) -> None:
        lim.check_id(self.subscription_id, "subscription_id")
        if not isinstance(self.immediately, bool):
            raise InvalidInput("immediately must be true or false")
        lim.check_text(self.reason, "reason", limit=lim.MAX_ID)
        _owner(self.customer_id)


@dataclass(frozen=True, kw_only=True)
class Pause(Command):
    subscription_id: str
    customer_id: str | None = None  # the Kafka key; must own the subscription

    def check(self) -> None:
        lim.check_id(self.subscription_id, "subscription_id")
        _owner(self.customer_id)


@dataclass(frozen=True, kw_only=True)
class Resume(Command):
    subscription_id: str
    customer_id: str | None = None  # the Kafka key; must own the subscription

    def check(self) -> None:
        lim.check_id(self.subscription_id, "subscription_id")
        _owner(self.customer_id)


@dataclass(frozen=True, kw_only=True)
class Reactivate(Command):
    subscription_id: str
    customer_id: str | None = None  # the Kafka key; must own the subscription

    def check(self) -> None:
        lim.check_id(self.subscription_id, "subscription_id")
        _owner(self.customer_id)


@dataclass(frozen=True, kw_only=True)
class RecordPayment(Command):
    """A payment collected outside the gateway flow (bank transfer, a payments team)."""

    subscription_id: str
    invoice_number: str
    amount: int
    reference: str
    customer_id: str | None = None  # the Kafka key; must own the subscription
    currency: str | None = None  # the invoice's; None (a version-1 message) means just that

    def check(self) -> None:
        from domain.money import exponent

        lim.check_id(self.subscription_id, "subscription_id")
        lim.check_id(self.invoice_number, "invoice_number")
        lim.check_amount(self.amount, "amount", low=1, high=lim.MAX_INVOICE)
        lim.check_text(self.reference, "reference", limit=lim.MAX_ID)
        if self.currency is not None:
            exponent(self.currency)
        _owner(self.customer_id)


@dataclass(frozen=True, kw_only=True)
class AdvanceClock(Command):
    """Run everything due up to `at`, in time order."""


MAX_ATTEMPTS = 10_000  # charge attempts of one invoice (dunning allows at most ~366)


@dataclass(frozen=True, kw_only=True)
class RecordChargeOutcome(Command):
    """The gateway's answer to a ChargeRequested, fed back by the payments worker.

    Its command id is derived from the charge's idempotency key, so a repeated outcome (a
    redelivery, a worker restarted after kill -9) is a duplicate.
    """

    subscription_id: str
    invoice_number: str
    attempt: int
    succeeded: bool
    reference: str
    decline_code: str | None = None
    decline_message: str | None = None
    customer_id: str | None = None  # the Kafka key; must own the subscription

    def check(self) -> None:
        lim.check_id(self.subscription_id, "subscription_id")
        lim.check_id(self.invoice_number, "invoice_number")
        lim.check_count(self.attempt, "attempt", 1, MAX_ATTEMPTS)
        if not isinstance(self.succeeded, bool):
            raise InvalidInput("succeeded must be true or false")
        lim.check_text(self.reference, "reference", limit=lim.MAX_ID, blank=True)
        if self.decline_code is not None:
            lim.check_id(self.decline_code, "decline_code")
        if self.decline_message is not None:
            lim.check_text(self.decline_message, "decline_message", blank=True)
        _owner(self.customer_id)


@dataclass(frozen=True, kw_only=True)
class GrantCredit(Command):
    """Give a customer credit in a currency; their next invoices in it spend it first."""

    customer_id: str
    currency: str
    amount: int
    reason: str

    def check(self) -> None:
        from domain.money import exponent

        lim.check_id(self.customer_id, "customer_id")
        exponent(self.currency)
        lim.check_amount(self.amount, "amount", low=1)
        lim.check_text(self.reason, "reason", limit=lim.MAX_ID)


@dataclass(frozen=True, kw_only=True)
class RefundInvoice(Command):
    """Give back money paid on an invoice (all that is left of it, or `amount`): a credit
    note, refunded through the gateway (or to the customer's credit if paid outside it)."""

    subscription_id: str
    invoice_number: str
    amount: int | None = None  # None: everything paid and not credited yet
    reason: str = "requested_by_customer"
    customer_id: str | None = None  # the Kafka key; must own the subscription

    def check(self) -> None:
        lim.check_id(self.subscription_id, "subscription_id")
        lim.check_id(self.invoice_number, "invoice_number")
        if self.amount is not None:
            lim.check_amount(self.amount, "amount", low=1, high=lim.MAX_INVOICE)
        lim.check_text(self.reason, "reason", limit=lim.MAX_ID)
        _owner(self.customer_id)


@dataclass(frozen=True, kw_only=True)
class RecordRefundOutcome(Command):
    """The gateway's answer to a RefundRequested, fed back by the payments worker (its
    command id derived from the refund's idempotency key, so a repeat is a duplicate)."""

    subscription_id: str
    credit_note: str
    succeeded: bool
    reference: str = ""  # the gateway's refund id
    failure_code: str | None = None
    failure_message: str | None = None
    customer_id: str | None = None  # the Kafka key; must own the subscription

    def check(self) -> None:
        lim.check_id(self.subscription_id, "subscription_id")
        lim.check_id(self.credit_note, "credit_note")
        if not isinstance(self.succeeded, bool):
            raise InvalidInput("succeeded must be true or false")
        lim.check_text(self.reference, "reference", limit=lim.MAX_ID, blank=True)
        if self.failure_code is not None:
            lim.check_id(self.failure_code, "failure_code")
        if self.failure_message is not None:
            lim.check_text(self.failure_message, "failure_message", blank=True)
        _owner(self.customer_id)


from domain.notifications import commands as _notify  # noqa: E402 - defined with their rules

ClaimDelivery = _notify.ClaimDelivery
RecordDelivery = _notify.RecordDelivery
MarkNotificationRead = _notify.MarkNotificationRead
RecordCustomerNote = _notify.RecordCustomerNote

from datetime import datetime  # noqa: E402 - the webhooks commands' times (kept in this section)


@dataclass(frozen=True, kw_only=True)
class AddWebhookEndpoint(Command):
    """An endpoint for the ledger's webhooks; its signing secret is never in the command."""

    endpoint_id: str
    url: str
    event_types: tuple[str, ...] = ()  # empty: every type
    include_personal_data: bool = False

    def check(self) -> None:
        from domain.webhooks.types import check_types, check_url

        lim.check_id(self.endpoint_id, "the endpoint id (endpoint_id)")
        check_url(self.url)
        check_types(self.event_types)
        if not isinstance(self.include_personal_data, bool):
            raise InvalidInput("include_personal_data must be true or false")


@dataclass(frozen=True, kw_only=True)
class RemoveWebhookEndpoint(Command):
    endpoint_id: str

    def check(self) -> None:
        lim.check_id(self.endpoint_id, "the endpoint id (endpoint_id)")


@dataclass(frozen=True, kw_only=True)
class ScheduleWebhookDelivery(Command):
    """The webhook worker's decision: this ledger event goes to this endpoint."""

    endpoint_id: str
    event_id: str
    source_event: str  # e.g. Subscription.Invoiced
    source_id: str  # the event's aggregate id
    source_version: int
    occurred_at: datetime
    customer_id: str | None = None  # whose event it is (also the Kafka key)

    def check(self) -> None:
        from domain.webhooks.types import TYPES

        lim.check_id(self.endpoint_id, "the endpoint id (endpoint_id)")
        lim.check_id(self.event_id, "event_id")
        if self.source_event not in TYPES:
            raise InvalidInput(f"{lim.quote(self.source_event)} is not an event webhooks send")
        lim.check_id(self.source_id, "source_id")
        lim.check_count(self.source_version, "source_version", 1, lim.INT64_MAX)
        lim.check_time(self.occurred_at, "occurred_at")
        _owner(self.customer_id)


@dataclass(frozen=True, kw_only=True)
class RecordWebhookAttempt(Command):
    """What one HTTP attempt of a delivery got: a status code (0: no answer) and why."""

    delivery_id: str
    attempt: int
    attempted_at: datetime  # wall clock: receivers live in real time
    status_code: int
    error: str = ""
    next_attempt_at: datetime | None = None  # None after a failure: given up

    def check(self) -> None:
        lim.check_id(self.delivery_id, "delivery_id")
        lim.check_count(self.attempt, "attempt", 1, 10_000)
        lim.check_time(self.attempted_at, "attempted_at")
        lim.check_count(self.status_code, "status_code (0: no answer)", 0, 999)
        lim.check_text(self.error, "error", limit=lim.MAX_ID, blank=True)
        if self.next_attempt_at is not None:
            lim.check_time(self.next_attempt_at, "next_attempt_at")


@dataclass(frozen=True, kw_only=True)
class ReplayWebhookDelivery(Command):
    """Send a delivery again (same body id), whatever became of it."""

    delivery_id: str

    def check(self) -> None:
        lim.check_id(self.delivery_id, "delivery_id")


COMMANDS: dict[str, type[Command]] = {
    name: obj
    for name, obj in list(globals().items())
    if isinstance(obj, type) and issubclass(obj, Command) and obj is not Command
}
"""Every command this module defines, by name (the Avro record name)."""
