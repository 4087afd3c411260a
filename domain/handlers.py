"""The command handlers: what each command does to the books (a part of the Ledger)."""

from __future__ import annotations

from functools import singledispatchmethod
from typing import TYPE_CHECKING, Any

from domain import commands as c
from domain.base import iso
from domain.bookkeeping import Coupon, TaxRate
from domain.customer import Customer, check_profile, personal_fields
from domain.duework import DueWork
from domain.errors import AlreadyExists, InvalidInput, UnknownCoupon
from domain.identity import (
    coupon_uuid,
    customer_uuid,
    plan_uuid,
    subscription_uuid,
    tax_rate_uuid,
)
from domain.invoicing import Coupon as CouponTerms
from domain.periods import Interval
from domain.plan import Plan
from domain.pricing import Pricing
from domain.subscription import Subscription
from domain.unit_of_work import A, UnitOfWork


class CommandHandlers(DueWork):
    """One handler per command type; each checks every rule before it changes anything."""

    if TYPE_CHECKING:  # what the handlers use of the Ledger core they are part of

        def _add(self, uow: UnitOfWork, agg: A, message: str) -> A: ...
        def _subscription(
            self, uow: UnitOfWork, subscription_id: str, cmd: c.Command
        ) -> Subscription: ...

    @singledispatchmethod
    def handle(self, command: c.Command, uow: UnitOfWork) -> dict[str, Any] | None:
        raise InvalidInput(f"unknown command {type(command).__name__}")

    @handle.register
    def _(self, cmd: c.DefinePlan, uow: UnitOfWork) -> dict[str, Any]:
        pricing = Pricing.from_dict(cmd.pricing)
        plan = Plan.define(
            id=plan_uuid(cmd.plan_id),
            plan_id=cmd.plan_id,
            name=cmd.name,
            currency=cmd.currency,
            pricing=pricing,
            interval=Interval.parse(cmd.interval, cmd.interval_count),
            trial_days=cmd.trial_days,
            features=list(cmd.features),
            at=cmd.at,
            meta=cmd.meta(),
        )
        self._add(uow, plan, f"plan '{cmd.plan_id}' already exists")
        return {"plan_id": cmd.plan_id}

    @handle.register
    def _(self, cmd: c.ChangePlanPrice, uow: UnitOfWork) -> dict[str, Any]:
        plan = self._plan(uow, cmd.plan_id)
        subscribers: list[Subscription] = []
        if cmd.apply_to == "immediately" and self.schedule is not None:
            for sub_id in self.schedule.subscriptions_on_plan(cmd.plan_id):
                sub = uow.find(Subscription, sub_id)
                if sub is not None:  # their overdue work first, at the old price
                    self._bring_up_to(uow, sub, cmd.at, cmd.meta(actor="scheduler"))
                    subscribers.append(sub)
        plan.change_price(Pricing.from_dict(cmd.pricing), cmd.apply_to, cmd.at, cmd.meta())
        migrated = 0
        for sub in subscribers:
            if sub.status not in ("active", "past_due", "trialing"):
                continue
            if sub.plan_id != plan.plan_id or sub.plan_version >= plan.price_version:
                continue
            self._change(uow, sub, plan, sub.quantity, cmd, reason="price_change")
            migrated += 1
        return {"plan_id": cmd.plan_id, "price_version": plan.price_version, "migrated": migrated}

    @handle.register
    def _(self, cmd: c.RetirePlan, uow: UnitOfWork) -> dict[str, Any]:
        self._plan(uow, cmd.plan_id).retire(cmd.at, cmd.meta())
        return {"plan_id": cmd.plan_id}

    @handle.register
    def _(self, cmd: c.RegisterCustomer, uow: UnitOfWork) -> dict[str, Any]:
        check_profile(
            name=cmd.name, email=cmd.email, country=cmd.country, payment_token=cmd.payment_token
        )
        cid = customer_uuid(cmd.customer_id)
        if uow.find(Customer, cid) is not None:
            raise AlreadyExists(f"customer '{cmd.customer_id}' already exists")
        personal = self.vault.encrypt(
            str(cid), personal_fields(cmd.name, cmd.email, cmd.payment_token, cmd.preferences)
        )
        uow.add(
            Customer.register(
                id=cid,
                customer_id=cmd.customer_id,
                country=cmd.country,
                personal=personal,
                at=cmd.at,
                meta=cmd.meta(),
            )
        )
        return {"customer_id": cmd.customer_id}

    @handle.register
    def _(self, cmd: c.UpdateCustomer, uow: UnitOfWork) -> dict[str, Any]:
        check_profile(
            name=cmd.name, email=cmd.email, country=cmd.country, payment_token=cmd.payment_token
        )
        customer = self._customer(uow, cmd.customer_id)
        data = dict(self.personal(uow, customer))
        for key in ("name", "email", "payment_token"):
            if getattr(cmd, key) is not None:
                data[key] = getattr(cmd, key)
        uow.personal[str(customer.id)] = data
        customer.update(
            country=cmd.country or customer.country,
            personal=self.vault.encrypt(str(customer.id), data),
            at=cmd.at,
            meta=cmd.meta(),
        )
        return {"customer_id": cmd.customer_id}

    @handle.register
    def _(self, cmd: c.EraseCustomer, uow: UnitOfWork) -> dict[str, Any]:
        customer = self._customer(uow, cmd.customer_id)
        customer.erase(cmd.at, cmd.meta())
        return {"customer_id": cmd.customer_id, "shred_key": str(customer.id)}

    @handle.register
    def _(self, cmd: c.DefineCoupon, uow: UnitOfWork) -> dict[str, Any]:
        terms = CouponTerms(
            code=cmd.code,
            percent_off_bp=cmd.percent_off_bp,
            amount_off=cmd.amount_off,
            currency=cmd.currency,
            duration=cmd.duration,
            periods=cmd.periods,
        )
        coupon = Coupon.define(id=coupon_uuid(cmd.code), terms=terms, at=cmd.at, meta=cmd.meta())
        self._add(uow, coupon, f"coupon '{cmd.code}' already exists")
        return {"code": cmd.code}

    @handle.register
    def _(self, cmd: c.SetTaxRate, uow: UnitOfWork) -> dict[str, Any]:
        tax = uow.find(TaxRate, tax_rate_uuid(cmd.country))
        if tax is None:
            check_profile(name=None, email=None, country=cmd.country, payment_token=None)
            uow.add(
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

    @handle.register
    def _(self, cmd: c.Subscribe, uow: UnitOfWork) -> dict[str, Any]:
        customer = self._customer(uow, cmd.customer_id)
        customer.check_not_erased()
        customer.check_exists_at(cmd.at, f"customer '{cmd.customer_id}'")
        plan = self._plan(uow, cmd.plan_id)
        plan.check_exists_at(cmd.at, f"plan '{cmd.plan_id}'")
        coupon = None
        if cmd.coupon:
            found = uow.get(
                Coupon, coupon_uuid(cmd.coupon), UnknownCoupon(f"unknown coupon '{cmd.coupon}'")
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
        self._add(uow, sub, f"subscription '{cmd.subscription_id}' already exists")
        invoices = []
        if sub.status == "active":
            invoices = self._bill(uow, sub, plan, "subscription_create", cmd.at, cmd.meta())
        return {"subscription_id": cmd.subscription_id, "status": sub.status, "invoices": invoices}

    @handle.register
    def _(self, cmd: c.ChangePlan, uow: UnitOfWork) -> dict[str, Any]:
        sub = self._subscription(uow, cmd.subscription_id, cmd)
        plan = self._plan(uow, cmd.plan_id)
        plan.check_exists_at(cmd.at, f"plan '{cmd.plan_id}'")
        quantity = cmd.quantity
        if quantity is None:  # a flat plan is for one; any other keeps the seats
            quantity = 1 if plan.pricing.model == "flat" else sub.quantity
        invoices = self._change(uow, sub, plan, quantity, cmd)
        return {
            "subscription_id": cmd.subscription_id,
            "plan_id": cmd.plan_id,
            "quantity": sub.quantity,
            "invoices": invoices,
        }

    @handle.register
    def _(self, cmd: c.Cancel, uow: UnitOfWork) -> dict[str, Any]:
        sub = self._subscription(uow, cmd.subscription_id, cmd)
        sub.cancel(immediately=cmd.immediately, reason=cmd.reason, at=cmd.at, meta=cmd.meta())
        return {
            "subscription_id": cmd.subscription_id,
            "status": sub.status,
            "cancel_at": iso(cmd.at if cmd.immediately else sub.period_end),
        }

    @handle.register
    def _(self, cmd: c.Pause, uow: UnitOfWork) -> dict[str, Any]:
        sub = self._subscription(uow, cmd.subscription_id, cmd)
        sub.pause(cmd.at, cmd.meta())
        return {"subscription_id": cmd.subscription_id, "status": sub.status}

    @handle.register
    def _(self, cmd: c.Resume, uow: UnitOfWork) -> dict[str, Any]:
        sub = self._subscription(uow, cmd.subscription_id, cmd)
        invoices = []
        if sub.resume(cmd.at, cmd.meta()):
            plan = self._plan(uow, sub.plan_id)
            invoices = self._bill(uow, sub, plan, "resume", cmd.at, cmd.meta())
        return {"subscription_id": cmd.subscription_id, "status": sub.status, "invoices": invoices}

    @handle.register
    def _(self, cmd: c.Reactivate, uow: UnitOfWork) -> dict[str, Any]:
        sub = self._subscription(uow, cmd.subscription_id, cmd)
        plan = self._plan(uow, sub.plan_id)
        self._customer(uow, sub.customer_id).check_not_erased()
        invoices = []
        if sub.reactivate(plan=plan, at=cmd.at, meta=cmd.meta()):
            invoices = self._bill(uow, sub, plan, "reactivation", cmd.at, cmd.meta())
        return {"subscription_id": cmd.subscription_id, "status": sub.status, "invoices": invoices}

    @handle.register
    def _(self, cmd: c.RecordPayment, uow: UnitOfWork) -> dict[str, Any]:
        sub = self._subscription(uow, cmd.subscription_id, cmd)
        sub.record_payment(
            cmd.invoice_number, cmd.amount, cmd.reference, cmd.at, cmd.meta(), cmd.currency
        )
        return {
            "subscription_id": cmd.subscription_id,
            "invoice": cmd.invoice_number,
            "status": sub.status,
        }

    @handle.register
    def _(self, cmd: c.AdvanceClock, uow: UnitOfWork) -> dict[str, Any]:
        """The clock was moved to `at` before any command takes effect (Ledger._take_effect):
        report what that ran."""
        return {"to": iso(cmd.at), **uow.due}

    def _change(
        self,
        uow: UnitOfWork,
        sub: Subscription,
        plan: Plan,
        quantity: int,
        cmd: c.Command,
        reason: str = "customer_request",
    ) -> list[str]:
        old_plan = self._plan(uow, sub.plan_id)
        lines = sub.change_plan(
            plan=plan,
            quantity=quantity,
            plan_name_old=old_plan.name,
            at=cmd.at,
            meta=cmd.meta(),
            reason=reason,
        )
        return self._invoice(
            uow,
            sub,
            lines,
            "proration" if sub.anchor != cmd.at else "plan_change",
            cmd.at,
            cmd.meta(),
        )
