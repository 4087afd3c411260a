"""The billing read model's credit part: customers' credit balances, credit notes, refunds.

A mixin of `BillingProjection` (projections/billing.py), so these tables are the billing
model's: rebuilt with it, fed in the same transaction. Amounts are integer minor units.
"""

from __future__ import annotations

from collections.abc import Callable

from projections.base import ts
from projections.db import ReadDB
from schemas.records import EventRecord

# refund_status of a credit note: none (it went to the customer's credit), then pending,
# succeeded or failed at the gateway
NONE, PENDING, SUCCEEDED, FAILED = "none", "pending", "succeeded", "failed"

CREDIT_TABLES = {
    "customer_credit": """CREATE TABLE IF NOT EXISTS customer_credit (
        customer_id TEXT NOT NULL, currency TEXT NOT NULL, balance BIGINT NOT NULL,
        updated_at TEXT NOT NULL, PRIMARY KEY (customer_id, currency))""",
    "credit_movements": """CREATE TABLE IF NOT EXISTS credit_movements (
        event_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, currency TEXT NOT NULL,
        at TEXT NOT NULL, kind TEXT NOT NULL, amount BIGINT NOT NULL,
        balance_after BIGINT NOT NULL, source TEXT, reason TEXT, reference TEXT,
        position BIGINT)""",
    "credit_notes": """CREATE TABLE IF NOT EXISTS credit_notes (
        number TEXT PRIMARY KEY, invoice_number TEXT NOT NULL, subscription_id TEXT NOT NULL,
        customer_id TEXT NOT NULL, currency TEXT NOT NULL, amount BIGINT NOT NULL,
        reason TEXT NOT NULL, method TEXT NOT NULL, issued_at TEXT NOT NULL,
        refund_status TEXT NOT NULL, refund_reference TEXT, updated_at TEXT NOT NULL)""",
    "credit_note_lines": """CREATE TABLE IF NOT EXISTS credit_note_lines (
        number TEXT NOT NULL, line_no INTEGER NOT NULL, kind TEXT NOT NULL,
        description TEXT NOT NULL, amount BIGINT NOT NULL, PRIMARY KEY (number, line_no))""",
    "refunds": """CREATE TABLE IF NOT EXISTS refunds (
        credit_note TEXT PRIMARY KEY, invoice_number TEXT NOT NULL,
        subscription_id TEXT NOT NULL, customer_id TEXT NOT NULL, currency TEXT NOT NULL,
        amount BIGINT NOT NULL, charge_reference TEXT NOT NULL, idempotency_key TEXT NOT NULL,
        status TEXT NOT NULL, reference TEXT, failure_code TEXT, failure_message TEXT,
        requested_at TEXT NOT NULL, settled_at TEXT)""",
}


class CreditModel:
    """Handlers for the credit events (BillingProjection's `_sub` finds the subscription)."""

    _sub: Callable[[ReadDB, EventRecord], dict]

    # ---- the customer's balance -----------------------------------------------------------

    def _balance(self, db: ReadDB, r: EventRecord, kind: str, **extra: str | None) -> None:
        d = r.data
        db.execute(
            "INSERT INTO customer_credit (customer_id, currency, balance, updated_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (customer_id, currency) DO UPDATE SET"
            " balance = excluded.balance, updated_at = excluded.updated_at",
            (d["customer_id"], d["currency"], d["balance_after"], ts(r.at)),
        )
        db.execute(
            "INSERT INTO credit_movements (event_id, customer_id, currency, at, kind, amount,"
            " balance_after, source, reason, reference, position)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                r.event_id,
                d["customer_id"],
                d["currency"],
                ts(r.at),
                kind,
                d["amount"] if kind == "granted" else -d["amount"],
                d["balance_after"],
                extra.get("source"),
                extra.get("reason"),
                extra.get("reference"),
                r.position,
            ),
        )

    def on_Customer_CreditGranted(self, db: ReadDB, r: EventRecord) -> None:
        d = r.data
        self._balance(
            db, r, "granted", source=d["source"], reason=d["reason"], reference=d["reference"]
        )

    def on_Customer_CreditApplied(self, db: ReadDB, r: EventRecord) -> None:
        self._balance(db, r, "applied", source="invoice", reference=r.data["invoice"])

    def on_Subscription_CreditMovedToCustomer(self, db: ReadDB, r: EventRecord) -> None:
        """The old per-subscription column empties; the customer's balance got it."""
        db.execute(
            "UPDATE subscriptions SET credit_balance = 0 WHERE aggregate_id = ?",
            (r.aggregate_id,),
        )

    # ---- credit notes and refunds -------------------------------------------------------

    def on_Subscription_CreditNoteIssued(self, db: ReadDB, r: EventRecord) -> None:
        d, sub = r.data, self._sub(db, r)
        db.execute(
            "INSERT INTO credit_notes (number, invoice_number, subscription_id, customer_id,"
            " currency, amount, reason, method, issued_at, refund_status, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                d["number"],
                d["invoice"],
                sub["subscription_id"],
                sub["customer_id"],
                d["currency"],
                d["amount"],
                d["reason"],
                d["method"],
                ts(r.at),
                NONE,
                ts(r.at),
            ),
        )
        db.executemany(
            "INSERT INTO credit_note_lines (number, line_no, kind, description, amount)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (d["number"], i, ln["kind"], ln["description"], ln["amount"])
                for i, ln in enumerate(d["lines"], 1)
            ],
        )

    def on_Subscription_RefundRequested(self, db: ReadDB, r: EventRecord) -> None:
        d, sub = r.data, self._sub(db, r)
        db.execute(
            "INSERT INTO refunds (credit_note, invoice_number, subscription_id, customer_id,"
            " currency, amount, charge_reference, idempotency_key, status, requested_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                d["credit_note"],
                d["invoice_number"],
                sub["subscription_id"],
                sub["customer_id"],
                d["currency"],
                d["amount"],
                d["charge_reference"],
                d["idempotency_key"],
                PENDING,
                ts(r.at),
            ),
        )
        self._refund_status(db, r, PENDING, None)

    def on_Subscription_RefundSucceeded(self, db: ReadDB, r: EventRecord) -> None:
        db.execute(
            "UPDATE refunds SET status = ?, reference = ?, settled_at = ? WHERE credit_note = ?",
            (SUCCEEDED, r.data["reference"], ts(r.at), r.data["credit_note"]),
        )
        self._refund_status(db, r, SUCCEEDED, r.data["reference"])

    def on_Subscription_RefundFailed(self, db: ReadDB, r: EventRecord) -> None:
        d = r.data
        db.execute(
            "UPDATE refunds SET status = ?, failure_code = ?, failure_message = ?,"
            " settled_at = ? WHERE credit_note = ?",
            (FAILED, d["failure_code"], d["failure_message"], ts(r.at), d["credit_note"]),
        )
        self._refund_status(db, r, FAILED, None)

    def _refund_status(self, db: ReadDB, r: EventRecord, status: str, ref: str | None) -> None:
        db.execute(
            "UPDATE credit_notes SET refund_status = ?, refund_reference = ?, updated_at = ?"
            " WHERE number = ?",
            (status, ref, ts(r.at), r.data["credit_note"]),
        )
