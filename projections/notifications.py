"""Notifications read model: the outbox (a message per event, channel and template) and its
delivery status, from the events alone.

A message row holds no personal data: the recipient, the name and the text are resolved
through the vault when it is sent or read (so an erased customer's rows cannot reveal, nor
send, anything). Its status comes from the Delivery events (consumers/notify.py records
them), so a rebuild of this model restores every status and sends nothing again. Messages
are decided by `domain.notifications.messages.EVENT_KINDS`, dispatched in `apply`, so an
event another helper adds reaches here by its name alone.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from domain.notifications.delivery import FAILED, GAVE_UP, PENDING, SENT, delivery_uuid
from domain.notifications.messages import (
    EVENT_KINDS,
    KINDS,
    SILENT_CHURN,
    channels_of,
    decline_in_words,
    message_id,
)
from projections.base import KeptRows, LastValues, Projection, dumps, ts
from projections.db import ReadDB
from projections.statuses import listed
from schemas.records import EventRecord

RANK = {template: n for n, template in enumerate(KINDS)}  # at one instant: welcome first
SIMULATOR = "simulator"  # the source of `simulate`'s commands: their messages wait to be asked
KEPT = 50_000  # subscriptions' rows, and invoices' bodies, kept in memory (each), at most
# what the dispatcher may still try, but for simulated messages: the terms of its query
# that its index is made for (a partial index serves a query with these very terms)
UNSETTLED = f"status IN ({listed((PENDING, FAILED))})"
REAL = "simulated = 0"


class NotificationsProjection(Projection):
    name = "notifications"
    follows = ("Subscription",)  # `apply`: each subscription's id and plan, kept

    def wants(self, event: str) -> bool:
        return super().wants(event) or event in EVENT_KINDS  # a message's event

    def __init__(self) -> None:
        self._subs = KeptRows(KEPT)  # each subscription's id and plan
        self._invoices: dict[str, str] = {}  # number -> body (fixed once written)
        # in a batch, invoices' bodies written at its end (`_known` writes them before it
        # reads one back)
        self._bodies = LastValues(
            "INSERT INTO notification_invoices (number, customer_id, currency, body)"
            " VALUES {rows} ON CONFLICT (number) DO NOTHING",
            4,
        )

    tables = {
        "notifications": """CREATE TABLE IF NOT EXISTS notifications (
            message_id TEXT PRIMARY KEY, delivery_id TEXT NOT NULL UNIQUE,
            customer_id TEXT NOT NULL, channel TEXT NOT NULL, template TEXT NOT NULL,
            event_id TEXT NOT NULL, event TEXT NOT NULL, subscription_id TEXT,
            context TEXT NOT NULL, created_at TEXT NOT NULL, rank INTEGER NOT NULL,
            simulated INTEGER NOT NULL,
            status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, lease_until TEXT,
            next_attempt_at TEXT, last_error TEXT, reference TEXT, sent_at TEXT,
            read_at TEXT)""",
        "notification_customers": """CREATE TABLE IF NOT EXISTS notification_customers (
            customer_id TEXT PRIMARY KEY, erased INTEGER NOT NULL DEFAULT 0,
            simulated INTEGER NOT NULL DEFAULT 0)""",
        "notification_subscriptions": """CREATE TABLE IF NOT EXISTS notification_subscriptions (
            aggregate_id TEXT PRIMARY KEY, subscription_id TEXT NOT NULL,
            customer_id TEXT NOT NULL, plan_id TEXT NOT NULL)""",
        "notification_invoices": """CREATE TABLE IF NOT EXISTS notification_invoices (
            number TEXT PRIMARY KEY, customer_id TEXT NOT NULL, currency TEXT NOT NULL,
            body TEXT NOT NULL)""",
    }
    indexes = (  # the dispatcher's poll reads what is due, not every message ever made
        "CREATE INDEX IF NOT EXISTS notifications_due ON notifications"
        f" (created_at, rank, message_id) WHERE {UNSETTLED} AND {REAL}",
    )

    def apply(self, db: ReadDB, record: EventRecord) -> None:
        """Bookkeeping first (`on_<Aggregate>_<Event>`), then the event's message, if any."""
        super().apply(db, record)
        if record.aggregate_type == "Subscription":
            self._subs.carry(record)
        template = EVENT_KINDS.get(record.name)
        if template is not None:
            known = self._known(db, record, template)
            context = self._context(record, template, known)
            if context is not None:
                self._messages(db, record, template, context)

    def create(self, db: ReadDB) -> None:
        self._subs.clear()  # a new or rebuilt read DB
        self._invoices.clear()
        super().create(db)

    # ---- bookkeeping: what messages need to say, kept from earlier events --------------

    def on_Customer_Registered(self, db: ReadDB, r: EventRecord) -> None:
        """A customer `simulate` made is nobody: their messages wait to be asked for."""
        db.execute(
            "INSERT INTO notification_customers (customer_id, simulated) VALUES (?, ?)"
            " ON CONFLICT (customer_id) DO NOTHING",
            (r.data["customer_id"], 1 if r.meta.get("source") == SIMULATOR else 0),
        )

    def on_Customer_Erased(self, db: ReadDB, r: EventRecord) -> None:
        """An erased customer gets nothing more: what was still waiting is given up."""
        customer = r.data["customer_id"]
        db.execute(
            "UPDATE notification_customers SET erased = 1 WHERE customer_id = ?", (customer,)
        )
        db.execute(
            "UPDATE notifications SET status = ?, last_error = ?, lease_until = NULL,"
            " next_attempt_at = NULL WHERE customer_id = ? AND status IN (?, ?)",
            (GAVE_UP, "the customer was erased", customer, PENDING, FAILED),
        )

    def on_Subscription_Subscribed(self, db: ReadDB, r: EventRecord) -> None:
        d = r.data
        db.execute(
            "INSERT INTO notification_subscriptions (aggregate_id, subscription_id,"
            " customer_id, plan_id) VALUES (?, ?, ?, ?)",
            (r.aggregate_id, d["subscription_id"], d["customer_id"], d["plan_id"]),
        )
        row = {"subscription_id": d["subscription_id"], "plan_id": d["plan_id"]}
        self._subs.keep(r.aggregate_id, r.version, row)

    def on_Subscription_PlanChanged(self, db: ReadDB, r: EventRecord) -> None:
        db.execute(
            "UPDATE notification_subscriptions SET plan_id = ? WHERE aggregate_id = ?",
            (r.data["plan_id"], r.aggregate_id),
        )
        kept = self._subs.at(r.aggregate_id, r.version - 1)
        if kept is not None:
            self._subs.keep(r.aggregate_id, r.version, {**kept, "plan_id": r.data["plan_id"]})

    def on_Subscription_Invoiced(self, db: ReadDB, r: EventRecord) -> None:
        """What a receipt will list once the invoice is paid."""
        d = r.data
        body = {
            k: d[k]
            for k in ("number", "reason", "subtotal", "tax", "total", "credit_applied")
            if k in d
        }
        body["amount_due"] = d["amount_due"]
        body["period_start"], body["period_end"] = ts(d["period_start"]), ts(d["period_end"])
        body["issued_at"] = ts(r.at)
        body["lines"] = [
            {"kind": ln["kind"], "description": ln["description"], "amount": ln["amount"]}
            for ln in d["lines"]
        ]
        text = dumps(body)
        if self._bodies.get(d["number"]) is None:  # the first kept, as DO NOTHING keeps it
            row = (d["number"], d["customer_id"], d["currency"], text)
            self._bodies.set(self, db, d["number"], row)
        if len(self._invoices) >= KEPT:
            self._invoices.clear()
        self._invoices[d["number"]] = text  # the same body any replay of it writes

    # ---- delivery status, from the Delivery events -------------------------------------

    def _status(self, db: ReadDB, r: EventRecord, sql: str, params: tuple = ()) -> None:
        db.execute(
            f"UPDATE notifications SET {sql} WHERE delivery_id = ?", (*params, r.aggregate_id)
        )

    def on_Delivery_Opened(self, db: ReadDB, r: EventRecord) -> None:
        """Normally the message is here already; on Kafka a rebuild may bring its delivery
        (another partition) first: a placeholder the message then fills in."""
        d = r.data
        db.execute(
            "INSERT INTO notifications (message_id, delivery_id, customer_id, channel,"
            " template, event_id, event, context, created_at, rank, simulated, status)"
            " VALUES (?, ?, ?, ?, ?, '', '', '{}', ?, 0, 0, ?) ON CONFLICT (message_id) DO NOTHING",
            (
                d["message_id"],
                r.aggregate_id,
                d["customer_id"],
                d["channel"],
                d["template"],
                ts(r.at),
                PENDING,
            ),
        )

    def on_Delivery_Claimed(self, db: ReadDB, r: EventRecord) -> None:
        self._status(
            db,
            r,
            "status = ?, attempts = ?, lease_until = ?, next_attempt_at = NULL",
            (PENDING, r.data["attempt"], ts(r.data["lease_until"])),
        )

    def on_Delivery_Sent(self, db: ReadDB, r: EventRecord) -> None:
        self._status(
            db,
            r,
            "status = ?, attempts = ?, reference = ?, sent_at = ?, lease_until = NULL,"
            " next_attempt_at = NULL, last_error = NULL",
            (SENT, r.data["attempt"], r.data["reference"], ts(r.data["attempted_at"])),
        )

    def on_Delivery_Failed(self, db: ReadDB, r: EventRecord) -> None:
        self._status(
            db,
            r,
            "status = ?, last_error = ?, lease_until = NULL, next_attempt_at = ?",
            (FAILED, r.data["error"], ts(r.data["next_attempt_at"])),
        )

    def on_Delivery_GaveUp(self, db: ReadDB, r: EventRecord) -> None:
        self._status(
            db,
            r,
            "status = ?, last_error = ?, lease_until = NULL, next_attempt_at = NULL",
            (GAVE_UP, r.data["reason"]),
        )

    def on_Delivery_Skipped(self, db: ReadDB, r: EventRecord) -> None:
        self._status(db, r, "status = ?, last_error = ?", ("skipped", r.data["reason"]))

    def on_Delivery_HandedOff(self, db: ReadDB, r: EventRecord) -> None:
        self._status(db, r, "status = ?, reference = ?", ("handed_off", r.data["webhook_type"]))

    def on_Delivery_Read(self, db: ReadDB, r: EventRecord) -> None:
        self._status(db, r, "read_at = ?", (ts(r.at),))

    # ---- the messages ------------------------------------------------------------------

    def _known(self, db: ReadDB, r: EventRecord, template: str) -> dict[str, Any]:
        """What a message needs of earlier events: its subscription's id and plan, and the
        invoice it is about (receipts, failed payments). Kept in memory as they are written;
        read, in one query, only when not (after a restart, say)."""
        number = r.data.get("number") if template in ("receipt", "payment_failed") else None
        sub = self._subs.at(r.aggregate_id, r.version)  # carried to this event in `apply`
        body = self._invoices.get(number) if number else None
        need_sub = sub is None and r.aggregate_type == "Subscription"
        if need_sub or (number and body is None):
            self._bodies.flush(db)  # an invoice of this batch, if it is one
            (row,) = db.query(
                "SELECT (SELECT subscription_id FROM notification_subscriptions"
                "  WHERE aggregate_id = ?) AS subscription_id,"
                " (SELECT plan_id FROM notification_subscriptions WHERE aggregate_id = ?)"
                " AS plan_id, (SELECT body FROM notification_invoices WHERE number = ?)"
                " AS invoice",
                (r.aggregate_id, r.aggregate_id, number),
            )
            if need_sub and row["subscription_id"] is not None:
                sub = {"subscription_id": row["subscription_id"], "plan_id": row["plan_id"]}
                self._subs.keep(r.aggregate_id, r.version, sub)
            body = body or row["invoice"]
        return {"subscription": sub or {}, "invoice": body}

    def _context(
        self, r: EventRecord, template: str, known: dict[str, Any]
    ) -> dict[str, Any] | None:
        """What the template is given: ids, amounts, dates, words; never personal data."""
        d = r.data
        if template == "cancellation_confirmed" and d.get("reason") in SILENT_CHURN:
            return None
        ctx: dict[str, Any] = {**known["subscription"], "at": ts(r.at)}
        for key in ("currency", "amount", "attempt", "expected_amount", "reason", "kind"):
            if key in d:
                ctx[key] = d[key]
        for key in ("renews_at", "trial_end", "cancel_at", "next_retry_at"):
            if key in d:
                ctx[key] = ts(d[key])
        if template in ("receipt", "payment_failed"):
            body = known["invoice"]
            ctx["invoice"] = json.loads(body) if body else {"number": d["number"], "lines": []}
        if template == "payment_failed":
            ctx["decline"] = decline_in_words(d.get("reason"), d.get("message"))
        if template == "plan_changed":
            ctx.update(
                from_plan_id=d["from_plan_id"],
                quantity=d["quantity"],
                period_end=ts(d["period_end"]),
            )
        if template in ("credit_note", "refund"):
            ctx["credit_note"] = d.get("credit_note") or d.get("number")
            ctx["invoice_number"] = d.get("invoice_number") or d.get("invoice")
            ctx["lines"] = [
                {"description": ln.get("description", ""), "amount": ln.get("amount", 0)}
                for ln in d.get("lines") or []
            ]
            ctx["method"] = d.get("method")
        return ctx

    def _messages(self, db: ReadDB, r: EventRecord, template: str, context: dict[str, Any]) -> None:
        """One row per channel, all in one statement; an erased customer's events make none
        (checked by the insert itself: no read per message)."""
        customer = r.data.get("customer_id")
        if not customer:
            return
        simulated = 1 if r.meta.get("source") == SIMULATOR else 0  # or the customer was
        rows = []
        for channel in channels_of(template):
            mid = message_id(r.event_id, channel, template)
            rows.append((mid, str(delivery_uuid(mid)), channel))
        db.execute(
            "WITH v (message_id, delivery_id, channel) AS"
            f" (VALUES {', '.join(['(?, ?, ?)'] * len(rows))})"
            " INSERT INTO notifications (message_id, delivery_id, customer_id, channel,"
            " template, event_id, event, subscription_id, context, created_at, rank,"
            " simulated, status) SELECT v.message_id, v.delivery_id, ?, v.channel, ?, ?, ?, ?,"
            " ?, ?, ?, CASE WHEN ? = 1 OR EXISTS (SELECT 1 FROM notification_customers"
            "  WHERE customer_id = ? AND simulated = 1) THEN 1 ELSE 0 END, ?"
            " FROM v WHERE NOT EXISTS (SELECT 1 FROM notification_customers"
            "  WHERE customer_id = ? AND erased = 1)"
            " ON CONFLICT (message_id) DO UPDATE SET event_id = excluded.event_id,"
            " event = excluded.event, subscription_id = excluded.subscription_id,"
            " context = excluded.context, created_at = excluded.created_at,"
            " rank = excluded.rank, simulated = excluded.simulated",
            (
                *[x for row in rows for x in row],
                customer,
                template,
                r.event_id,
                r.name,
                context.get("subscription_id"),
                dumps(context),  # the same for every channel
                ts(r.at),
                RANK[template],
                simulated,
                customer,
                PENDING,
                customer,
            ),
        )


def as_time(text: str | None) -> datetime | None:
    """A stored ISO 8601 UTC text back as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
