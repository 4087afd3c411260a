"""Plans, coupons and tax rates: defining them, and changing a plan's price."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from domain import commands as c
from domain.catalog.coupon import Coupon
from domain.catalog.plan import Plan
from domain.catalog.tax_rate import TaxRate
from domain.customer import check_profile
from domain.identity import coupon_uuid, plan_uuid, tax_rate_uuid
from domain.invoicing import Coupon as CouponTerms
from domain.ledger.due import bring_up_to
from domain.ledger.handlers.subscriptions import change_subscription
from domain.ledger.registry import handles
from domain.ledger.unit_of_work import UnitOfWork
from domain.periods import Interval
from domain.pricing import Pricing
from domain.subscription import LIVE, Subscription

if TYPE_CHECKING:
    from domain.ledger.service import Ledger


@handles(c.DefinePlan)
def define_plan(ledger: Ledger, cmd: c.DefinePlan, uow: UnitOfWork) -> dict[str, Any]:
    plan = Plan.define(
        id=plan_uuid(cmd.plan_id),
        plan_id=cmd.plan_id,
        name=cmd.name,
        currency=cmd.currency,
        pricing=Pricing.from_dict(cmd.pricing),
        interval=Interval.parse(cmd.interval, cmd.interval_count),
        trial_days=cmd.trial_days,
        features=list(cmd.features),
        at=cmd.at,
        meta=cmd.meta(),
    )
    ledger.add_new(uow, plan, f"plan '{cmd.plan_id}' already exists")
    return {"plan_id": cmd.plan_id}


@handles(c.ChangePlanPrice)
def change_plan_price(ledger: Ledger, cmd: c.ChangePlanPrice, uow: UnitOfWork) -> dict[str, Any]:
    """A new price version; `immediately` moves the plan's live subscribers to it now."""
    plan = ledger.load_plan(uow, cmd.plan_id)
    subscribers: list[Subscription] = []
    if cmd.apply_to == "immediately" and ledger.schedule is not None:
        for sub_id in ledger.schedule.subscriptions_on_plan(cmd.plan_id):
            sub = uow.find(Subscription, sub_id)
            if sub is not None:  # their overdue work first, at the old price
                bring_up_to(ledger, uow, sub, cmd.at, cmd.meta(actor="scheduler"))
                subscribers.append(sub)
    plan.change_price(Pricing.from_dict(cmd.pricing), cmd.apply_to, cmd.at, cmd.meta())
    migrated = 0
    for sub in subscribers:
        if sub.status not in LIVE:
            continue
        if sub.plan_id != plan.plan_id or sub.plan_version >= plan.price_version:
            continue
        change_subscription(ledger, uow, sub, plan, sub.quantity, cmd, reason="price_change")
        migrated += 1
    return {"plan_id": cmd.plan_id, "price_version": plan.price_version, "migrated": migrated}


@handles(c.RetirePlan)
def retire_plan(ledger: Ledger, cmd: c.RetirePlan, uow: UnitOfWork) -> dict[str, Any]:
    ledger.load_plan(uow, cmd.plan_id).retire(cmd.at, cmd.meta())
    return {"plan_id": cmd.plan_id}


@handles(c.DefineCoupon)
def define_coupon(ledger: Ledger, cmd: c.DefineCoupon, uow: UnitOfWork) -> dict[str, Any]:
    terms = CouponTerms(
        code=cmd.code,
        percent_off_bp=cmd.percent_off_bp,
        amount_off=cmd.amount_off,
        currency=cmd.currency,
        duration=cmd.duration,
        periods=cmd.periods,
    )
    coupon = Coupon.define(id=coupon_uuid(cmd.code), terms=terms, at=cmd.at, meta=cmd.meta())
    ledger.add_new(uow, coupon, f"coupon '{cmd.code}' already exists")
    return {"code": cmd.code}


@handles(c.SetTaxRate)
def set_tax_rate(ledger: Ledger, cmd: c.SetTaxRate, uow: UnitOfWork) -> dict[str, Any]:
    tax = uow.find(TaxRate, tax_rate_uuid(cmd.country))
    if tax is None:
        check_profile(name=None, email=None, country=cmd.country, payment_token=None)
        uow.start(
            TaxRate.set(
                id=tax_rate_uuid(cmd.country),
                country=cmd.country,
                rate_ppm=cmd.rate_ppm,
                at=cmd.at,
                meta=cmd.meta(),
            )
        )
    else:
        tax.change(cmd.rate_ppm, cmd.at, cmd.meta())
    return {"country": cmd.country, "rate_ppm": cmd.rate_ppm}
