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

    def check(self) -> None:
        from domain.customer import check_profile

        lim.check_id(self.customer_id, "customer_id")
        if all(v is None for v in (self.name, self.email, self.payment_token, self.country)):
            raise InvalidInput("nothing to update: give a name, email, payment token or country")
        check_profile(
            name=self.name, email=self.email, country=self.country, payment_token=self.payment_token
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


# ---- payments (issue 9): helper-owned section, add below this line ----

# ---- credit (issue 9): helper-owned section, add below this line ----

# ---- notifications (issue 9): helper-owned section, add below this line ----

# ---- webhooks (issue 9): helper-owned section, add below this line ----


COMMANDS: dict[str, type[Command]] = {
    name: obj
    for name, obj in list(globals().items())
    if isinstance(obj, type) and issubclass(obj, Command) and obj is not Command
}
"""Every command this module defines, by name (the Avro record name)."""
