"""Price models (flat, per-unit, graduated tiers, volume tiers) as pure functions of quantity."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from domain import limits as lim
from domain.errors import InvalidPricing
from domain.money import Money, parse_amount

MODELS = ("flat", "per_unit", "tiered", "volume")
_INFINITE = ("inf", "*", "∞", "infinity")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class Tier:
    """One band of a tiered price: units up to `up_to` (None = no limit) cost unit_amount each."""

    up_to: int | None
    unit_amount: int
    flat_amount: int = 0

    def __post_init__(self) -> None:
        if self.up_to is not None and (
            not _is_int(self.up_to) or not 1 <= self.up_to <= lim.MAX_QUANTITY
        ):
            raise InvalidPricing(
                f"a tier's upper bound (up_to) must be from 1 to {lim.MAX_QUANTITY:,}, or inf"
            )
        for name in ("unit_amount", "flat_amount"):
            value = getattr(self, name)
            if not _is_int(value) or not 0 <= value <= lim.MAX_AMOUNT:
                raise InvalidPricing(
                    f"a tier's {name} must be from 0 to {lim.MAX_AMOUNT:,} minor units"
                )

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-able form for events."""
        return {
            "up_to": self.up_to,
            "unit_amount": self.unit_amount,
            "flat_amount": self.flat_amount,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Tier:
        """Inverse of to_dict, validating again because stored data is input too."""
        try:
            return cls(data["up_to"], data["unit_amount"], data.get("flat_amount", 0))  # type: ignore[arg-type]
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidPricing("a tier needs up_to, unit_amount and flat_amount") from exc


@dataclass(frozen=True, slots=True)
class Pricing:
    """How a plan turns a quantity into an amount; validated so pricing can never be ambiguous."""

    model: str
    amount: int = 0
    tiers: tuple[Tier, ...] = ()

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise InvalidPricing(f"the pricing model must be one of {', '.join(MODELS)}")
        if isinstance(self.tiers, list):  # accept lists from callers, store the hashable form
            object.__setattr__(self, "tiers", tuple(self.tiers))
        if not isinstance(self.tiers, tuple) or not all(isinstance(t, Tier) for t in self.tiers):
            raise InvalidPricing("tiers must be a sequence of Tier")
        if not _is_int(self.amount) or not 0 <= self.amount <= lim.MAX_AMOUNT:
            raise InvalidPricing(f"a price must be from 0 to {lim.MAX_AMOUNT:,} minor units")
        if len(self.tiers) > lim.MAX_TIERS:
            raise InvalidPricing(f"a price has at most {lim.MAX_TIERS} tiers")
        if self.model in ("flat", "per_unit"):
            if self.tiers:
                raise InvalidPricing(f"{self.model} pricing takes an amount, not tiers")
            return
        if self.amount != 0:
            raise InvalidPricing(f"{self.model} pricing takes tiers, not an amount")
        if not self.tiers:
            raise InvalidPricing(f"{self.model} pricing needs at least one tier")
        if self.tiers[-1].up_to is not None:
            raise InvalidPricing("the last tier must be unbounded (up_to inf)")
        bounds = [t.up_to for t in self.tiers[:-1]]
        if None in bounds:
            raise InvalidPricing("only the last tier may be unbounded")
        if any(b <= a for a, b in pairwise(bounds)):  # type: ignore[operator]
            raise InvalidPricing("tier up_to bounds must be strictly increasing")

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-able form for events."""
        return {
            "model": self.model,
            "amount": self.amount,
            "tiers": [t.to_dict() for t in self.tiers],
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Pricing:
        """Inverse of to_dict, validating again because stored data is input too."""
        try:
            tiers = tuple(Tier.from_dict(t) for t in data.get("tiers") or ())  # type: ignore[attr-defined]
            return cls(data["model"], data.get("amount", 0), tiers)  # type: ignore[arg-type]
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidPricing("a price needs a model, an amount and tiers") from exc


def parse_tier(text: str, currency: str) -> Tier:
    """Read "10:5.00", "inf:4.00" or "10:5.00:20.00" (with a flat fee) from the command line."""
    shape = "a tier looks like UP_TO:UNIT_PRICE[:FLAT_FEE], e.g. 10:5.00 or inf:4.00"
    if not isinstance(text, str):
        raise InvalidPricing(shape)
    parts = [p.strip() for p in text.split(":")]
    if len(parts) not in (2, 3):
        raise InvalidPricing(shape)
    bound = parts[0].lower()
    if bound in _INFINITE:
        up_to = None
    elif bound.isascii() and bound.isdigit() and len(bound) <= 18:
        up_to = int(bound)
    else:
        raise InvalidPricing(f"a tier's UP_TO must be a whole number or inf ({shape})")
    unit_amount = parse_amount(parts[1], currency)
    flat_amount = parse_amount(parts[2], currency) if len(parts) == 3 else 0
    return Tier(up_to, unit_amount, flat_amount)


def _check_quantity(quantity: object) -> int:
    return lim.check_count(quantity, "quantity", 1, lim.MAX_QUANTITY)


def price_for(pricing: Pricing, quantity: int) -> int:
    """Amount for one period at this quantity, in minor units, with no rounding needed."""
    _check_quantity(quantity)
    if pricing.model == "flat":
        return pricing.amount
    if pricing.model == "per_unit":
        return pricing.amount * quantity
    if pricing.model == "volume":
        for tier in pricing.tiers:
            if tier.up_to is None or quantity <= tier.up_to:
                return quantity * tier.unit_amount + tier.flat_amount
        raise AssertionError("unreachable: the last tier is unbounded")
    total, below = 0, 0
    for tier in pricing.tiers:  # graduated: each band prices only the units that fall in it
        ceiling = quantity if tier.up_to is None else min(tier.up_to, quantity)
        units = ceiling - below
        if units <= 0:
            break
        total += units * tier.unit_amount + tier.flat_amount
        if tier.up_to is None:
            break
        below = tier.up_to
    return total


def describe(pricing: Pricing, quantity: int, currency: str) -> str:
    """Short human label for an invoice line, e.g. three seats at USD 10.00 each."""
    _check_quantity(quantity)
    if pricing.model == "flat":
        return "flat"
    if pricing.model == "per_unit":
        return f"{quantity} × {Money(pricing.amount, currency)}"  # noqa: RUF001
    units = "unit" if quantity == 1 else "units"
    return f"{pricing.model} ({quantity} {units})"
