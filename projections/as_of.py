"""As of a past effective time: a subscription, a customer and invoices as they stood then.

Computed from the event store, not the read models (those keep only the present): an
aggregate is replayed up to its last event with an effective time at or before T, and
invoices are folded from the subscription's events up to T. The folds are pure functions
over EventRecords, so a unit test can hand them any history.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from domain.errors import InvalidInput
from projections.base import ts
from projections.statuses import OPEN, PAID, UNCOLLECTIBLE
from schemas.records import EventRecord, to_record


def version_at(events: Iterable[Any], at: datetime) -> int | None:
    """The version after the last event that took effect at or before `at` (None: none had).

    Effective times never go back within an aggregate, so this is a prefix of its history.
    """
    version = None
    for event in events:
        if event.timestamp > at:
            break
        version = event.originator_version
    return version


def invoices_at(records: Iterable[EventRecord], at: datetime) -> list[dict[str, Any]]:
    """The invoices one subscription had issued by `at`, each with its status then."""
    invoices: dict[str, dict[str, Any]] = {}
    sub: dict[str, Any] = {}
    for r in records:
        if r.at > at:
            break
        d = r.data
        if r.type == "Subscribed":
            sub = {k: d[k] for k in ("subscription_id", "customer_id", "currency")}
        elif r.type == "Invoiced":
            invoices[d["number"]] = {
                "number": d["number"],
                **sub,
                "reason": d["reason"],
                "issued_at": ts(r.at),
                "period_start": ts(d["period_start"]),
                "period_end": ts(d["period_end"]),
                "subtotal": d["subtotal"],
                "tax": d["tax"],
                "total": d["total"],
                "credit_applied": d["credit_applied"],
                "amount_due": d["amount_due"],
                "amount_paid": 0,
                "status": OPEN if d["amount_due"] > 0 else PAID,
                "attempts": 0,
                "next_retry_at": None,
                "lines": [
                    {
                        "kind": ln["kind"],
                        "description": ln["description"],
                        "amount": ln["amount"],
                        "period_start": ts(ln["period_start"]),
                        "period_end": ts(ln["period_end"]),
                    }
                    for ln in d["lines"]
                ],
            }
        elif r.type in ("PaymentSucceeded", "PaymentFailed", "ChargeRequested"):
            invoice = invoices.get(d["number"])
            if invoice is None:
                continue
            invoice["next_retry_at"] = None
            if r.type == "PaymentSucceeded":
                invoice.update(status=PAID, amount_paid=d["amount"], attempts=d["attempt"])
            elif r.type == "PaymentFailed":
                invoice.update(attempts=d["attempt"], next_retry_at=ts(d["next_retry_at"]))
        elif r.type == "Churned":
            for number in d["written_off"]:
                if number in invoices:
                    invoices[number].update(status=UNCOLLECTIBLE, next_retry_at=None)
    return [invoices[n] for n in sorted(invoices)]


def churn_at(records: Iterable[EventRecord], at: datetime) -> dict[str, Any]:
    """When and why the subscription had churned by `at` (all None if it had not, or came back)."""
    out: dict[str, Any] = {"canceled_at": None, "churn_kind": None, "churn_reason": None}
    for r in records:
        if r.at > at:
            break
        if r.type == "Churned":
            out = {
                "canceled_at": ts(r.at),
                "churn_kind": r.data["kind"],
                "churn_reason": r.data["reason"],
            }
        elif r.type == "Reactivated":
            out = dict.fromkeys(out)
    return out


def _not_yet(what: str, at: datetime) -> InvalidInput:
    return InvalidInput(f"{what} did not exist yet at {ts(at)}")


def subscription_at(ledger: Any, subscription_id: str, at: datetime) -> dict[str, Any]:
    """`subscription show`'s row, as the subscription stood at effective time `at`."""
    from domain.identity import subscription_uuid
    from domain.subscription import Subscription

    events = ledger.history(subscription_uuid(subscription_id))
    if not events:
        raise InvalidInput(f"unknown subscription '{subscription_id}'")
    version = version_at(events, at)
    if version is None:
        raise _not_yet(f"subscription '{subscription_id}'", at)
    sub = ledger.get(Subscription, subscription_uuid(subscription_id), version=version)
    records = [to_record(e) for e in events]
    invoices = invoices_at(records, at)
    retries = [i["next_retry_at"] for i in invoices if i["status"] == OPEN and i["next_retry_at"]]
    return {
        "as_of": ts(at),
        "subscription_id": sub.subscription_id,
        "customer_id": sub.customer_id,
        "plan_id": sub.plan_id,
        "plan_version": sub.plan_version,
        "status": str(sub.status),
        "quantity": sub.quantity,
        "currency": sub.currency,
        "mrr": sub.mrr,
        "current_period_start": ts(sub.period_start),
        "current_period_end": ts(sub.period_end),
        "trial_end": ts(sub.trial_end),
        "cancel_at_period_end": bool(sub.cancel_at_period_end),
        **churn_at(records, at),
        "credit_balance": sub.credit_balance,
        "next_retry_at": min(retries) if retries else None,
        "created_at": ts(sub.created_on),
        "open_invoices": [i["number"] for i in invoices if i["status"] == OPEN],
        "last_event_version": version,
    }


def subscription_invoices_at(
    ledger: Any, subscription_id: str, at: datetime
) -> list[dict[str, Any]]:
    from domain.identity import subscription_uuid

    return invoices_at(
        (to_record(e) for e in ledger.history(subscription_uuid(subscription_id))), at
    )


def customer_at(
    ledger: Any, customer_id: str, subscription_ids: Iterable[str], at: datetime
) -> dict[str, Any]:
    """`customer show`'s profile as the customer stood at `at`: details, balance, subscriptions.

    Personal data is decrypted with today's key: after an erasure it cannot be read for any
    date, and the profile says so (`personal_data_erased`).
    """
    from domain.customer import Customer
    from domain.identity import customer_uuid

    events = ledger.history(customer_uuid(customer_id))
    if not events:
        raise InvalidInput(f"unknown customer '{customer_id}'")
    version = version_at(events, at)
    if version is None:
        raise _not_yet(f"customer '{customer_id}'", at)
    customer = ledger.get(Customer, customer_uuid(customer_id), version=version)
    data = None
    if not customer.erased:
        data = ledger.vault.decrypt(str(customer.id), customer.personal)
    profile: dict[str, Any] = {
        "as_of": ts(at),
        "customer_id": customer_id,
        "country": customer.country,
        "erased": bool(customer.erased),
    }
    if data is not None:
        profile.update(data)
    elif not customer.erased:
        profile["personal_data_erased"] = True  # erased since: the key is gone
    balance: dict[str, dict[str, int]] = {
        cur: {"outstanding": 0, "credit": amount} for cur, amount in customer.credit.items()
    }
    subs = []
    for sub_id in subscription_ids:
        try:
            sub = subscription_at(ledger, sub_id, at)
        except InvalidInput:  # not yet subscribed then
            continue
        subs.append(sub_id)
        figures = balance.setdefault(sub["currency"], {"outstanding": 0, "credit": 0})
        figures["credit"] += sub["credit_balance"]  # an earlier version's, not yet moved
        for invoice in subscription_invoices_at(ledger, sub_id, at):
            if invoice["status"] == OPEN:
                figures["outstanding"] += invoice["amount_due"] - invoice["amount_paid"]
    profile["balance"] = dict(sorted(balance.items()))
    profile["subscriptions"] = subs
    return profile
