"""Commands: imperative requests from upstream, each with an id and an effective time."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from domain.errors import InvalidInput


@dataclass(frozen=True, kw_only=True)
class Command:
    """Every command says who asked (actor, source), when it takes effect (`at`) and its id.

    A repeated `command_id` has no second effect.
    """

    command_id: str
    at: datetime
    actor: str = "anonymous"
    source: str = "cli"
    correlation_id: str | None = None

    def __post_init__(self) -> None:
        if not self.command_id or not isinstance(self.command_id, str):
            raise InvalidInput("command_id is required")
        if not isinstance(self.at, datetime) or self.at.tzinfo is None:
            raise InvalidInput("the effective time 'at' must be a timezone-aware datetime")
        # Ledger time is UTC to the second: proration is by the second, and stored times
        # then sort as text everywhere.
        object.__setattr__(self, "at", self.at.astimezone(UTC).replace(microsecond=0))

    @property
    def command_name(self) -> str:
        return type(self).__name__

    def meta(self, **extra: str) -> dict[str, str]:
        meta = {
            "command_id": self.command_id,
            "command": self.command_name,
            "correlation_id": self.correlation_id or self.command_id,
            "actor": self.actor,
            "source": self.source,
        }
        meta.update(extra)
        return meta

    def payload(self) -> dict[str, Any]:
        """The command's own fields, without the envelope (id, time, who)."""
        skip = {f.name for f in fields(Command)}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}


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


@dataclass(frozen=True, kw_only=True)
class ChangePlanPrice(Command):
    plan_id: str
    pricing: dict[str, Any]
    apply_to: str = "new"  # new | at_renewal | immediately


@dataclass(frozen=True, kw_only=True)
class RetirePlan(Command):
    plan_id: str


@dataclass(frozen=True, kw_only=True)
class RegisterCustomer(Command):
    customer_id: str
    name: str
    email: str
    payment_token: str
    country: str = "US"
    preferences: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class UpdateCustomer(Command):
    customer_id: str
    name: str | None = None
    email: str | None = None
    payment_token: str | None = None
    country: str | None = None


@dataclass(frozen=True, kw_only=True)
class EraseCustomer(Command):
    customer_id: str


@dataclass(frozen=True, kw_only=True)
class DefineCoupon(Command):
    code: str
    percent_off_bp: int | None = None
    amount_off: int | None = None
    currency: str | None = None
    duration: str = "once"  # once | repeating | forever
    periods: int | None = None


@dataclass(frozen=True, kw_only=True)
class SetTaxRate(Command):
    country: str
    rate_ppm: int


@dataclass(frozen=True, kw_only=True)
class Subscribe(Command):
    customer_id: str
    plan_id: str
    subscription_id: str
    quantity: int = 1
    coupon: str | None = None
    anchor_day: int | None = None


@dataclass(frozen=True, kw_only=True)
class ChangePlan(Command):
    subscription_id: str
    plan_id: str
    quantity: int | None = None
    customer_id: str | None = None  # the Kafka key; must own the subscription


@dataclass(frozen=True, kw_only=True)
class Cancel(Command):
    subscription_id: str
    immediately: bool = False
    reason: str = "customer_request"
    customer_id: str | None = None  # the Kafka key; must own the subscription


@dataclass(frozen=True, kw_only=True)
class Pause(Command):
    subscription_id: str
    customer_id: str | None = None  # the Kafka key; must own the subscription


@dataclass(frozen=True, kw_only=True)
class Resume(Command):
    subscription_id: str
    customer_id: str | None = None  # the Kafka key; must own the subscription


@dataclass(frozen=True, kw_only=True)
class Reactivate(Command):
    subscription_id: str
    customer_id: str | None = None  # the Kafka key; must own the subscription


@dataclass(frozen=True, kw_only=True)
class RecordPayment(Command):
    """A payment collected outside the gateway flow (bank transfer, a payments team)."""

    subscription_id: str
    invoice_number: str
    amount: int
    reference: str
    customer_id: str | None = None  # the Kafka key; must own the subscription


@dataclass(frozen=True, kw_only=True)
class AdvanceClock(Command):
    """Run everything due up to `at`, in time order."""


COMMANDS: dict[str, type[Command]] = {
    cls.__name__: cls
    for cls in (
        DefinePlan,
        ChangePlanPrice,
        RetirePlan,
        RegisterCustomer,
        UpdateCustomer,
        EraseCustomer,
        DefineCoupon,
        SetTaxRate,
        Subscribe,
        ChangePlan,
        Cancel,
        Pause,
        Resume,
        Reactivate,
        RecordPayment,
        AdvanceClock,
    )
}
