"""Plans: the catalog's prices, versioned so existing subscribers keep theirs."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from domain.base import LedgerAggregate
from domain.errors import InvalidInput, InvalidTransition, PlanRetired
from domain.limits import MAX_ID, MAX_TRIAL_DAYS, check_count, check_id, check_text
from domain.money import exponent
from domain.periods import Interval
from domain.pricing import Pricing
from domain.topics import register_moved

APPLY_TO = ("new", "at_renewal", "immediately")


@register_moved
class Plan(LedgerAggregate):
    """A plan's price history: version 1 is its definition, each change a new version."""

    class Defined(LedgerAggregate.Created, LedgerAggregate.Event):
        plan_id: str
        name: str
        currency: str
        pricing: dict[str, Any]
        interval: dict[str, Any]
        trial_days: int
        features: list[str]

        def apply(self, plan: Plan) -> None:
            plan.plan_id = self.plan_id
            plan.name = self.name
            plan.currency = self.currency
            plan.interval = Interval.from_dict(self.interval)
            plan.trial_days = self.trial_days
            plan.features = list(self.features)
            plan.versions = [
                {"version": 1, "pricing": self.pricing, "apply_to": "new", "at": self.timestamp}
            ]
            plan.retired = False

    class PriceChanged(LedgerAggregate.Event):
        price_version: int
        pricing: dict[str, Any]
        apply_to: str

        def apply(self, plan: Plan) -> None:
            plan.versions.append(
                {
                    "version": self.price_version,
                    "pricing": self.pricing,
                    "apply_to": self.apply_to,
                    "at": self.timestamp,
                }
            )

    class Retired(LedgerAggregate.Event):
        def apply(self, plan: Plan) -> None:
            plan.retired = True

    if TYPE_CHECKING:  # state set by the events; not constructor fields for eventsourcing
        plan_id: str
        name: str
        currency: str
        interval: Interval
        trial_days: int
        features: list[str]
        versions: list[dict[str, Any]]
        retired: bool

    @classmethod
    def define(
        cls,
        *,
        id: UUID,
        plan_id: str,
        name: str,
        currency: str,
        pricing: Pricing,
        interval: Interval,
        trial_days: int,
        features: list[str],
        at: datetime,
        meta: dict,
    ) -> Plan:
        check_id(plan_id, "plan_id")
        check_text(name, "the plan's name", limit=MAX_ID)
        exponent(currency)
        check_count(trial_days, "trial_days", 0, MAX_TRIAL_DAYS)
        return cls._create(
            cls.Defined,
            id=id,
            timestamp=at,
            meta=meta,
            plan_id=plan_id,
            name=name,
            currency=currency,
            pricing=pricing.to_dict(),
            interval=interval.to_dict(),
            trial_days=trial_days,
            features=list(features),
        )

    @property
    def price_version(self) -> int:
        return self.versions[-1]["version"]

    @property
    def pricing(self) -> Pricing:
        return Pricing.from_dict(self.versions[-1]["pricing"])

    def check_open(self) -> None:
        if self.retired:
            raise PlanRetired(f"plan '{self.plan_id}' is retired and takes no new subscribers")

    def change_price(self, pricing: Pricing, apply_to: str, at: datetime, meta: dict) -> None:
        if apply_to not in APPLY_TO:
            raise InvalidInput(f"apply_to must be one of {', '.join(APPLY_TO)}")
        if self.retired:
            raise InvalidTransition(f"plan '{self.plan_id}' is retired")
        if pricing == self.pricing:
            raise InvalidInput(f"that is plan '{self.plan_id}''s current price: nothing to change")
        if (pricing.model == "flat") != (self.pricing.model == "flat"):
            raise InvalidInput(
                f"plan '{self.plan_id}' is {self.pricing.model}: a new price keeps it"
                f" {'flat' if self.pricing.model == 'flat' else 'priced by quantity'}"
                " (define a new plan to change that)"
            )
        self.emit(
            self.PriceChanged,
            at,
            meta,
            price_version=self.price_version + 1,
            pricing=pricing.to_dict(),
            apply_to=apply_to,
        )

    def retire(self, at: datetime, meta: dict) -> None:
        if self.retired:
            raise InvalidTransition(f"plan '{self.plan_id}' is already retired")
        self.emit(self.Retired, at, meta)

    def migrated_version_after(self, version: int, at: datetime) -> int | None:
        """The newest version, in force at `at`, that subscribers on `version` move to."""
        for entry in reversed(self.versions):
            if entry["version"] <= version:
                return None
            if entry["apply_to"] in ("at_renewal", "immediately") and entry["at"] <= at:
                return entry["version"]
        return None

    def pricing_at(self, version: int) -> Pricing:
        for entry in self.versions:
            if entry["version"] == version:
                return Pricing.from_dict(entry["pricing"])
        raise InvalidInput(f"plan '{self.plan_id}' has no price version {version}")
