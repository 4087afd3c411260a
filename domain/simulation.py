"""A realistic book of business, made only of real commands, reproducible from a seed.

Signups (some with trials, coupons or declining cards), upgrades, downgrades, seat
changes, cancellations, pauses and reactivations, day by day. The caller runs each day's
batch through the Ledger, after advancing the clock to that day.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from domain import commands as c

PLANS = [
    # id, name, currency, pricing, interval, count, trial days
    ("starter", "Starter", "USD", {"model": "flat", "amount": 1900, "tiers": []}, "month", 1, 14),
    ("pro", "Pro", "USD", {"model": "flat", "amount": 4900, "tiers": []}, "month", 1, 0),
    ("team", "Team", "USD", {"model": "per_unit", "amount": 1200, "tiers": []}, "month", 1, 0),
    (
        "pro-annual",
        "Pro (annual)",
        "USD",
        {"model": "flat", "amount": 49000, "tiers": []},
        "year",
        1,
        0,
    ),
    (
        "scale",
        "Scale",
        "USD",
        {
            "model": "tiered",
            "amount": 0,
            "tiers": [
                {"up_to": 10, "unit_amount": 2000, "flat_amount": 0},
                {"up_to": 50, "unit_amount": 1500, "flat_amount": 0},
                {"up_to": None, "unit_amount": 1000, "flat_amount": 0},
            ],
        },
        "month",
        1,
        0,
    ),
    ("eu-pro", "Pro (EUR)", "EUR", {"model": "flat", "amount": 4500, "tiers": []}, "month", 1, 0),
]
UPGRADES = {"starter": "pro", "pro": "pro-annual", "team": "scale"}
DOWNGRADES = {"pro": "starter", "pro-annual": "pro", "scale": "team"}
SEATS = {"team", "scale"}
COUNTRIES = [("US", 60), ("GB", 15), ("DE", 10), ("FR", 8), ("CA", 7)]
TAX = {"GB": 200_000, "DE": 190_000, "FR": 200_000}
TOKENS = [
    ("tok_visa", 92),
    ("tok_chargeDeclined", 3),
    ("tok_chargeDeclinedInsufficientFunds", 3),
    ("tok_chargeDeclinedExpiredCard", 2),
]
FIRST = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Ken",
    "Radia",
    "Linus",
    "Margaret",
    "Donald",
    "Frances",
    "John",
    "Sophie",
    "Tim",
    "Hedy",
    "Dennis",
]
LAST = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Thompson",
    "Perlman",
    "Torvalds",
    "Hamilton",
    "Knuth",
    "Allen",
    "Backus",
    "Wilson",
    "Berners-Lee",
    "Lamarr",
]


@dataclass
class _Sub:
    plan: str
    quantity: int
    state: str = "live"  # what the simulator believes: live | canceling | canceled | paused


@dataclass
class Simulation:
    customers: int
    months: int
    seed: int = 1
    start: datetime = datetime(2025, 1, 1, tzinfo=None)  # made UTC in __post_init__
    actor: str = "simulator"
    subs: dict[str, _Sub] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from datetime import UTC

        if self.start.tzinfo is None:
            self.start = self.start.replace(tzinfo=UTC)
        self.rng = random.Random(self.seed)
        self._n = 0

    @property
    def end(self) -> datetime:
        from domain.periods import Interval, add_interval

        return add_interval(self.start, Interval("month", 1), self.months)

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def _cmd(self, cls: type[c.Command], at: datetime, **fields: Any) -> c.Command:
        self._n += 1
        return cls(
            command_id=f"sim-{self.seed}-{self._n}",
            at=at,
            actor=self.actor,
            source="simulator",
            **fields,
        )

    def _pick(self, weighted: list[tuple[str, int]]) -> str:
        return self.rng.choices([w[0] for w in weighted], [w[1] for w in weighted])[0]

    def setup(self) -> list[c.Command]:
        at = self.start
        out = [
            self._cmd(
                c.DefinePlan,
                at,
                plan_id=pid,
                name=name,
                currency=cur,
                pricing=pr,
                interval=unit,
                interval_count=n,
                trial_days=trial,
                features=("reports", "api") if pid != "starter" else ("reports",),
            )
            for pid, name, cur, pr, unit, n, trial in PLANS
        ]
        out += [self._cmd(c.SetTaxRate, at, country=cc, rate_ppm=r) for cc, r in TAX.items()]
        out.append(
            self._cmd(
                c.DefineCoupon,
                at,
                code="LAUNCH20",
                percent_off_bp=2000,
                duration="repeating",
                periods=3,
            )
        )
        out.append(
            self._cmd(
                c.DefineCoupon, at, code="WELCOME5", amount_off=500, currency="USD", duration="once"
            )
        )
        return out

    def day(self, index: int) -> tuple[datetime, list[c.Command]]:
        """The day's start (advance the clock to it first) and the day's commands."""
        day = self.start + timedelta(days=index)
        rng = self.rng
        out: list[c.Command] = []
        for sub_id, sub in list(self.subs.items()):
            if rng.random() < 0.0025:  # roughly 7% of subscriptions a month do something
                out.extend(self._act(day, sub_id, sub))
        signups = self._signups_on(index)
        times = sorted(rng.randrange(1, 86_400) for _ in range(signups))
        for seconds in times:
            out.extend(self._signup(day + timedelta(seconds=seconds)))
        return day, out

    def _signups_on(self, index: int) -> int:
        done = len(self.subs)
        target = round(self.customers * (index + 1) / self.days)
        return max(0, min(target, self.customers) - done)

    def _signup(self, at: datetime) -> Iterator[c.Command]:
        rng = self.rng
        n = len(self.subs) + 1
        cus, sub_id = f"cus_{n:06d}", f"sub_{n:06d}"
        first, last = rng.choice(FIRST), rng.choice(LAST)
        country = self._pick(COUNTRIES)
        plan = (
            "eu-pro"
            if country in ("DE", "FR") and rng.random() < 0.5
            else rng.choices(
                ["starter", "pro", "team", "pro-annual", "scale"], [35, 30, 15, 12, 8]
            )[0]
        )
        quantity = rng.randint(2, 25) if plan in SEATS else 1
        coupon = None
        if plan in ("pro", "team", "scale") and rng.random() < 0.15:
            coupon = "LAUNCH20"
        elif plan == "starter" and rng.random() < 0.1:
            coupon = "WELCOME5"
        yield self._cmd(
            c.RegisterCustomer,
            at,
            customer_id=cus,
            name=f"{first} {last}",
            email=f"{first}.{last}.{n}@example.com".lower(),
            payment_token=self._pick(TOKENS),
            country=country,
        )
        yield self._cmd(
            c.Subscribe,
            at,
            customer_id=cus,
            plan_id=plan,
            subscription_id=sub_id,
            quantity=quantity,
            coupon=coupon,
        )
        self.subs[sub_id] = _Sub(plan, quantity)

    def _act(self, at: datetime, sub_id: str, sub: _Sub) -> list[c.Command]:
        rng = self.rng
        if sub.state == "canceled":
            if rng.random() < 0.3:
                sub.state = "live"
                return [self._cmd(c.Reactivate, at, subscription_id=sub_id)]
            return []
        if sub.state == "paused":
            sub.state = "live"
            return [self._cmd(c.Resume, at, subscription_id=sub_id)]
        if sub.state == "canceling":
            sub.state = "canceled"
            return []
        roll = rng.random()
        if roll < 0.30 and sub.plan in UPGRADES:
            sub.plan = UPGRADES[sub.plan]
            return [self._cmd(c.ChangePlan, at, subscription_id=sub_id, plan_id=sub.plan)]
        if roll < 0.42 and sub.plan in DOWNGRADES:
            sub.plan = DOWNGRADES[sub.plan]
            return [self._cmd(c.ChangePlan, at, subscription_id=sub_id, plan_id=sub.plan)]
        if roll < 0.60 and sub.plan in SEATS:
            sub.quantity = max(1, sub.quantity + rng.choice([-3, -1, 1, 2, 5]))
            return [
                self._cmd(
                    c.ChangePlan,
                    at,
                    subscription_id=sub_id,
                    plan_id=sub.plan,
                    quantity=sub.quantity,
                )
            ]
        if roll < 0.90:
            immediately = rng.random() < 0.3
            sub.state = "canceled" if immediately else "canceling"
            return [
                self._cmd(
                    c.Cancel,
                    at,
                    subscription_id=sub_id,
                    immediately=immediately,
                    reason=rng.choice(["too_expensive", "switched", "unused"]),
                )
            ]
        sub.state = "paused"
        return [self._cmd(c.Pause, at, subscription_id=sub_id)]
