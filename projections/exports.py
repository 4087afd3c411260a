"""Exports: customers, subscriptions, invoices, payments and credit notes as flat records.

The rows come from the billing read model; `ExportsProjection` adds the one thing it lacks,
each record's last change (`export_changes`: the effective time of the latest event that
touched it), so `--since` means "changed since", not "created since". Personal data is not
in any read model: `customers` takes a `person(customer_id)` function (the vault, at
export time) and shows nothing for an erased customer; every export marks the records of
erased customers (`customer_erased`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from projections.base import LastValues, Projection, ts
from projections.db import ReadDB
from schemas.records import EventRecord

KINDS = ("customers", "subscriptions", "invoices", "payments", "credit-notes")

COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": (
        "customer_id",
        "name",
        "email",
        "country",
        "registered_at",
        "erased",
        "updated_at",
    ),
    "subscriptions": (
        "subscription_id",
        "customer_id",
        "customer_erased",
        "plan_id",
        "plan_version",
        "status",
        "quantity",
        "currency",
        "mrr",
        "current_period_start",
        "current_period_end",
        "trial_end",
        "cancel_at_period_end",
        "canceled_at",
        "churn_kind",
        "churn_reason",
        "created_at",
        "updated_at",
    ),
    "invoices": (
        "number",
        "subscription_id",
        "customer_id",
        "customer_erased",
        "currency",
        "reason",
        "issued_at",
        "period_start",
        "period_end",
        "subtotal",
        "tax",
        "total",
        "credit_applied",
        "amount_due",
        "amount_paid",
        "status",
        "attempts",
        "paid_at",
        "updated_at",
    ),
    "payments": (
        "payment_id",
        "invoice_number",
        "subscription_id",
        "customer_id",
        "customer_erased",
        "currency",
        "amount",
        "at",
        "outcome",
        "attempt",
        "reason",
        "reference",
        "updated_at",
    ),
    "credit-notes": (
        "number",
        "invoice_number",
        "subscription_id",
        "customer_id",
        "customer_erased",
        "currency",
        "amount",
        "reason",
        "issued_at",
        "refund_status",
        "refund_reference",
        "updated_at",
    ),
}
BOOLEANS = frozenset({"erased", "customer_erased", "cancel_at_period_end"})

CHANGES_DDL = """CREATE TABLE IF NOT EXISTS export_changes (
    kind TEXT NOT NULL, record_id TEXT NOT NULL, changed_at TEXT NOT NULL,
    PRIMARY KEY (kind, record_id))"""


def touched(r: EventRecord) -> set[tuple[str, str]]:
    """(kind, key) of every exported record the event changes: a superset is harmless."""
    d = r.data
    found: set[tuple[str, str]] = set()
    if r.aggregate_type == "Customer" and d.get("customer_id"):
        found.add(("customers", str(d["customer_id"])))
    if r.aggregate_type != "Subscription":
        return found
    found.add(("subscriptions", r.aggregate_id))
    credit_note = r.type.startswith("CreditNote")
    if credit_note and d.get("number"):
        found.add(("credit-notes", str(d["number"])))
    if d.get("credit_note"):
        found.add(("credit-notes", str(d["credit_note"])))
    invoices = [d.get("invoice_number"), d.get("invoice"), *(d.get("written_off") or [])]
    if not credit_note:
        invoices.append(d.get("number"))
    found |= {("invoices", str(n)) for n in invoices if isinstance(n, str) and n}
    return found


class ExportsProjection(Projection):
    """Each exported record's last change, by the time of the event that made it."""

    name = "exports"
    follows = ("Customer", "Subscription")  # `touched` looks at nothing else
    tables = {"export_changes": CHANGES_DDL}

    def __init__(self) -> None:
        # in a batch, each record's latest change, written once (nothing here reads them)
        self._changes = LastValues(
            "INSERT INTO export_changes (kind, record_id, changed_at) VALUES {rows}"
            " ON CONFLICT (kind, record_id) DO UPDATE SET changed_at ="
            " CASE WHEN excluded.changed_at > export_changes.changed_at"
            " THEN excluded.changed_at ELSE export_changes.changed_at END",
            3,
        )

    def apply(self, db: ReadDB, record: EventRecord) -> None:
        at = ts(record.at)
        for kind, key in sorted(touched(record)):
            held = self._changes.get((kind, key))
            if held is None or held[2] < at:  # the latest: as the statement's CASE keeps
                self._changes.set(self, db, (kind, key), (kind, key, at))


def _changed(kind: str, key: str, created: str) -> str:
    return (
        f"COALESCE((SELECT ch.changed_at FROM export_changes ch WHERE ch.kind = '{kind}'"
        f" AND ch.record_id = {key}), {created})"
    )


_ERASED = "COALESCE((SELECT c.erased FROM customers c WHERE c.customer_id = t.customer_id), 0)"

_QUERIES = {
    "customers": "SELECT t.customer_id, t.country, t.registered_at, t.erased,"
    f" {_changed('customers', 't.customer_id', 't.registered_at')} AS updated_at"
    " FROM customers t",
    "subscriptions": "SELECT t.subscription_id, t.customer_id,"
    f" {_ERASED} AS customer_erased, t.plan_id, t.plan_version, t.status, t.quantity,"
    " t.currency, t.mrr, t.current_period_start, t.current_period_end, t.trial_end,"
    " t.cancel_at_period_end, t.canceled_at, t.churn_kind, t.churn_reason, t.created_at,"
    f" {_changed('subscriptions', 't.aggregate_id', 't.created_at')} AS updated_at"
    " FROM subscriptions t",
    "invoices": "SELECT t.number, t.subscription_id, t.customer_id,"
    f" {_ERASED} AS customer_erased, t.currency, t.reason, t.issued_at, t.period_start,"
    " t.period_end, t.subtotal, t.tax, t.total, t.credit_applied, t.amount_due,"
    " t.amount_paid, t.status, t.attempts, t.paid_at,"
    f" {_changed('invoices', 't.number', 't.issued_at')} AS updated_at FROM invoices t",
    "payments": "SELECT t.event_id AS payment_id, t.number AS invoice_number,"
    f" t.subscription_id, t.customer_id, {_ERASED} AS customer_erased, t.currency,"
    " t.amount, t.at, t.outcome, t.attempt, t.reason, t.reference, t.at AS updated_at"
    " FROM payments t",
    "credit-notes": "SELECT t.number, t.invoice_number, t.subscription_id, t.customer_id,"
    f" {_ERASED} AS customer_erased, t.currency, t.amount, t.reason, t.issued_at,"
    " t.refund_status, t.refund_reference,"
    f" {_changed('credit-notes', 't.number', 't.issued_at')} AS updated_at"
    " FROM credit_notes t",
}
_ORDER = {
    "customers": "customer_id",
    "subscriptions": "created_at, subscription_id",
    "invoices": "number",
    "payments": "at, payment_id",
    "credit-notes": "number",
}


def export(
    db: ReadDB,
    kind: str,
    since: datetime | None = None,
    person: Callable[[str], dict[str, Any] | None] | None = None,
) -> Iterable[dict[str, Any]]:
    """The records of `kind` changed at or after `since` (all without it), in `COLUMNS`."""
    sql = f"SELECT * FROM ({_QUERIES[kind]}) x"
    params: list[Any] = []
    if since is not None:
        sql += " WHERE x.updated_at >= ?"
        params.append(ts(since))
    for row in db.query(f"{sql} ORDER BY {_ORDER[kind]}", params):
        for name in BOOLEANS & row.keys():
            row[name] = bool(row[name])
        if kind == "customers":
            found = None if row["erased"] or person is None else person(row["customer_id"])
            row["name"] = (found or {}).get("name")
            row["email"] = (found or {}).get("email")
        yield {name: row.get(name) for name in COLUMNS[kind]}
