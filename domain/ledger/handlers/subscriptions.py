"""Subscriptions: subscribing, changing plan, cancelling, pausing, resuming, reactivating."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from domain import commands as c
from domain.base import iso
from domain.catalog.coupon import Coupon
from domain.catalog.plan import Plan
from domain.errors import InvalidInput, UnknownCoupon
from domain.identity import coupon_uuid, subscription_uuid
from domain.ledger.billing import bill, invoice
from domain.ledger.registry import handles
from domain.ledger.unit_of_work import UnitOfWork
from domain.subscription import Status, Subscription, changes

if TYPE_CHECKING:
    from domain.ledger.service import Ledger


@handles(c.Subscribe)
def subscribe(ledger: Ledger, cmd: c.Subscribe, uow: UnitOfWork) -> dict[str, Any]:
    """A new subscription; invoiced and charged now unless it starts with a trial."""
    customer = ledger.load_customer(uow, cmd.customer_id)
    customer.check_not_erased()
    customer.check_exists_at(cmd.at, f"customer '{cmd.customer_id}'")
    plan = ledger.load_plan(uow, cmd.plan_id)
    plan.check_exists_at(cmd.at, f"plan '{cmd.plan_id}'")
    coupon = None
    if cmd.coupon:
        found = uow.get(
            Coupon, coupon_uuid(cmd.coupon), lambda: UnknownCoupon(f"unknown coupon '{cmd.coupon}'")
        )
        found.check_exists_at(cmd.at, f"coupon '{cmd.coupon}'")
        coupon = found.terms
    if not cmd.subscription_id:
        raise InvalidInput("a subscription needs an id")
    if cmd.anchor_day is not None and not 1 <= cmd.anchor_day <= 28:
        # days 29-31 would drift to the 28th-30th after a short month
        raise InvalidInput("the billing anchor day is between 1 and 28")
    sub = Subscription.subscribe(
        id=subscription_uuid(cmd.subscription_id),
        subscription_id=cmd.subscription_id,
        customer_id=cmd.customer_id,
        plan=plan,
        quantity=cmd.quantity,
        coupon=coupon,
        anchor_day=cmd.anchor_day,
        at=cmd.at,
        meta=cmd.meta(),
    )
    ledger.add_new(uow, sub, f"subscription '{cmd.subscription_id}' already exists")
    invoices = []
    if sub.status == Status.ACTIVE:
        invoices = bill(ledger, uow, sub, plan, "subscription_create", cmd.at, cmd.meta())
    return {
        "subscription_id": cmd.subscription_id,
        "status": sub.status.value,
        "invoices": invoices,
    }


@handles(c.ChangePlan)
def change_plan(ledger: Ledger, cmd: c.ChangePlan, uow: UnitOfWork) -> dict[str, Any]:
    sub = ledger.load_subscription(uow, cmd.subscription_id, cmd)
    plan = ledger.load_plan(uow, cmd.plan_id)
    plan.check_exists_at(cmd.at, f"plan '{cmd.plan_id}'")
    quantity = cmd.quantity
    if quantity is None:  # a flat plan is for one; any other keeps the seats
        quantity = 1 if plan.pricing.model == "flat" else sub.quantity
    invoices = change_subscription(ledger, uow, sub, plan, quantity, cmd)
    return {
        "subscription_id": cmd.subscription_id,
        "plan_id": cmd.plan_id,
        "quantity": sub.quantity,
        "invoices": invoices,
    }


def change_subscription(
    ledger: Ledger,
    uow: UnitOfWork,
    sub: Subscription,
    plan: Plan,
    quantity: int,
    cmd: c.Command,
    reason: str = "customer_request",
) -> list[str]:
    """Move `sub` to `plan` x `quantity` now and invoice the proration (or the new cycle)."""
    old_plan = ledger.load_plan(uow, sub.plan_id)
    lines = changes.change_plan(
        sub,
        plan=plan,
        quantity=quantity,
        plan_name_old=old_plan.name,
        at=cmd.at,
        meta=cmd.meta(),
        reason=reason,
    )
    why = "proration" if sub.anchor != cmd.at else "plan_change"
    return invoice(ledger, uow, sub, lines, why, cmd.at, cmd.meta())


@handles(c.Cancel)
def cancel(ledger: Ledger, cmd: c.Cancel, uow: UnitOfWork) -> dict[str, Any]:
    sub = ledger.load_subscription(uow, cmd.subscription_id, cmd)
    changes.cancel(sub, immediately=cmd.immediately, reason=cmd.reason, at=cmd.at, meta=cmd.meta())
    return {
        "subscription_id": cmd.subscription_id,
        "status": sub.status.value,
        "cancel_at": iso(cmd.at if cmd.immediately else sub.period_end),
    }


@handles(c.Pause)
def pause(ledger: Ledger, cmd: c.Pause, uow: UnitOfWork) -> dict[str, Any]:
    sub = ledger.load_subscription(uow, cmd.subscription_id, cmd)
    changes.pause(sub, cmd.at, cmd.meta())
    return {"subscription_id": cmd.subscription_id, "status": sub.status.value}


@handles(c.Resume)
def resume(ledger: Ledger, cmd: c.Resume, uow: UnitOfWork) -> dict[str, Any]:
    sub = ledger.load_subscription(uow, cmd.subscription_id, cmd)
    invoices = []
    if changes.resume(sub, cmd.at, cmd.meta()):
        plan = ledger.load_plan(uow, sub.plan_id)
        invoices = bill(ledger, uow, sub, plan, "resume", cmd.at, cmd.meta())
    return {
        "subscription_id": cmd.subscription_id,
        "status": sub.status.value,
        "invoices": invoices,
    }


@handles(c.Reactivate)
def reactivate(ledger: Ledger, cmd: c.Reactivate, uow: UnitOfWork) -> dict[str, Any]:
    sub = ledger.load_subscription(uow, cmd.subscription_id, cmd)
    plan = ledger.load_plan(uow, sub.plan_id)
    ledger.load_customer(uow, sub.customer_id).check_not_erased()
    invoices = []
    if changes.reactivate(sub, plan=plan, at=cmd.at, meta=cmd.meta()):
        invoices = bill(ledger, uow, sub, plan, "reactivation", cmd.at, cmd.meta())
    return {
        "subscription_id": cmd.subscription_id,
        "status": sub.status.value,
        "invoices": invoices,
    }
