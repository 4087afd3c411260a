"""`customer timeline ID`: everything about one customer, in time order (the customer
360): events from the event store, invoices, payments, credit notes, notifications with
their delivery status, and the support log's notes, decrypted."""

from __future__ import annotations

from typing import Any

from verbs.app import App
from verbs.notifications import outbox

TIMELINE_COLUMNS = (
    "at",
    "kind",
    "what",
    "subscription_id",
    "status",
    "amount",
    "currency",
    "detail",
)


SHOWN_ELSEWHERE = frozenset(
    {
        "Subscription.Invoiced",  # an invoice row
        "Subscription.PaymentSucceeded",  # payment rows
        "Subscription.PaymentFailed",
        "Subscription.ChargeRequested",  # the payment row says how it went
        "Subscription.RefundRequested",  # the credit note row says how it went
        "Customer.NoteRecorded",  # a note row, decrypted
    }
)
DETAIL_FIELDS = (
    "plan_id",
    "quantity",
    "kind",
    "reason",
    "country",
    "renews_at",
    "trial_end",
    "cancel_at",
    "period_end",
)


def _iso(value: Any) -> str | None:
    from projections.base import ts

    return ts(value) if value is not None else None


def _events(app: App, customer_id: str, subs: dict[str, str]) -> list[dict[str, Any]]:
    """The customer's and their subscriptions' events, from the event store, decrypted."""
    from domain.identity import customer_uuid, subscription_uuid

    ledger, out = app.runtime.ledger, []
    histories = [(None, ledger.history(customer_uuid(customer_id)))]
    histories += [(s, ledger.history(subscription_uuid(s))) for s in subs]
    for sub_id, events in histories:
        for e in events:
            name = type(e).__qualname__
            if name == "Customer.NoteRecorded":
                out.append(_note(app, customer_id, e))
            if name in SHOWN_ELSEWHERE:
                continue
            detail = ", ".join(
                f"{k} {_iso(getattr(e, k)) if k.endswith(('_at', '_end')) else getattr(e, k)}"
                for k in DETAIL_FIELDS
                if getattr(e, k, None) not in (None, "")
            )
            out.append(
                {
                    "at": _iso(e.timestamp),
                    "kind": "event",
                    "what": name,
                    "subscription_id": sub_id,
                    "status": getattr(e, "status", None),
                    "detail": detail,
                }
            )
    return out


def _note(app: App, customer_id: str, event: Any) -> dict[str, Any]:
    from domain.identity import customer_uuid

    data = app.runtime.ledger.vault.decrypt(str(customer_uuid(customer_id)), event.note)
    text = data.get("text", "") if data else "(erased)"
    actor = event.meta.get("actor", "")
    return {
        "at": _iso(event.timestamp),
        "kind": "note",
        "what": f"{event.channel} note",
        "detail": f"{actor}: {text}",
    }


def timeline(app: App, customer_id: str) -> list[dict[str, Any]]:
    """Everything about one customer, in time order: events, invoices, payments, credit
    notes, notifications with their delivery status, and support notes."""
    from projections import reports

    db = app.runtime.db
    app.runtime.ledger.customer_profile(customer_id)  # unknown: the error says so
    subs = {s["subscription_id"]: s["plan_id"] for s in reports.subscriptions(db, customer_id)}
    rows = _events(app, customer_id, subs)
    for inv in reports.invoices(db, customer=customer_id):
        rows.append(
            {
                "at": inv["issued_at"],
                "kind": "invoice",
                "what": inv["number"],
                "subscription_id": inv["subscription_id"],
                "status": inv["status"],
                "amount": inv["total"],
                "currency": inv["currency"],
                "detail": f"{inv['reason']}, due {inv['amount_due']}",
            }
        )
    for pay in reports.payments(db, customer=customer_id):
        why = pay["reason"] or pay["reference"] or ""
        rows.append(
            {
                "at": pay["at"],
                "kind": "payment",
                "what": pay["number"],
                "subscription_id": pay["subscription_id"],
                "status": pay["outcome"],
                "amount": pay["amount"],
                "currency": pay["currency"],
                "detail": f"attempt {pay['attempt']}" + (f": {why}" if why else ""),
            }
        )
    try:
        notes = reports.credit_notes(db, customer=customer_id)
    except Exception:  # no credit notes in this read model
        notes = []
    for cn in notes:
        rows.append(
            {
                "at": cn["issued_at"],
                "kind": "credit_note",
                "what": cn["number"],
                "subscription_id": cn["subscription_id"],
                "status": cn["refund_status"],
                "amount": cn["amount"],
                "currency": cn["currency"],
                "detail": f"invoice {cn['invoice_number']}: {cn['reason']}",
            }
        )
    for msg in outbox(app, customer=customer_id):
        detail = msg["last_error"] or msg["reference"] or ""
        rows.append(
            {
                "at": msg["created_at"],
                "kind": "notification",
                "what": f"{msg['template']} ({msg['channel']})",
                "subscription_id": msg["subscription_id"],
                "status": msg["status"],
                "detail": detail + (" · read" if msg["read_at"] else ""),
            }
        )
    order = {"event": 0, "invoice": 1, "payment": 2, "credit_note": 3, "note": 4, "notification": 5}
    rows.sort(key=lambda r: (r["at"] or "", order[r["kind"]]))
    return [{k: r.get(k) for k in TIMELINE_COLUMNS} for r in rows]
