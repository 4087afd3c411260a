"""Which ledger events reach webhooks, under which type, and what their `data` may carry.

A webhook body says what happened in ids, amounts, dates and states, never in personal
data: every type copies a fixed list of fields from its event (a whitelist, so a field
added to an event later never leaks by accident). Names and emails go only to endpoints
added with `include_personal_data`, resolved through the vault at send time (the sender's
job, not this module's).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from domain import limits as lim
from domain.base import iso
from domain.errors import InvalidInput

# The ledger event -> the webhook type it is sent as (one type per event).
TYPES: dict[str, str] = {
    "Customer.Registered": "customer.created",
    "Customer.Updated": "customer.updated",
    "Customer.Erased": "customer.deleted",
    "Subscription.Subscribed": "subscription.created",
    "Subscription.TrialConverted": "subscription.updated",
    "Subscription.Renewed": "subscription.updated",
    "Subscription.PlanChanged": "subscription.updated",
    "Subscription.QuantityChanged": "subscription.updated",
    "Subscription.Paused": "subscription.updated",
    "Subscription.Resumed": "subscription.updated",
    "Subscription.Reactivated": "subscription.updated",
    "Subscription.CancellationScheduled": "subscription.canceled",
    "Subscription.Churned": "subscription.churned",
    "Subscription.Invoiced": "invoice.created",
    "Subscription.PaymentSucceeded": "invoice.paid",
    "Subscription.PaymentFailed": "invoice.payment_failed",
    "Subscription.RenewalReminderIssued": "invoice.upcoming",
    "Subscription.CreditNoteIssued": "credit_note.created",
    "Subscription.RefundSucceeded": "refund.succeeded",
    "Subscription.RefundFailed": "refund.failed",
    "Subscription.TrialEndingSoon": "subscription.trial_will_end",
    "Customer.CreditGranted": "customer.credit_granted",
}

WEBHOOK_TYPES: tuple[str, ...] = tuple(sorted(set(TYPES.values())))
"""Every type an endpoint may subscribe to (`webhook add --events`)."""

_PERIOD = ("period_start", "period_end")
# The event's own fields each type copies into `data` (beside the ids every body has).
FIELDS: dict[str, tuple[str, ...]] = {
    "Customer.Registered": ("country",),
    "Customer.Updated": ("country",),
    "Customer.Erased": (),
    "Subscription.Subscribed": (
        "plan_id",
        "plan_version",
        "currency",
        "quantity",
        *_PERIOD,
        "trial_end",
    ),
    "Subscription.TrialConverted": _PERIOD,
    "Subscription.Renewed": ("period_index", *_PERIOD, "plan_version"),
    "Subscription.PlanChanged": (
        "from_plan_id",
        "plan_id",
        "plan_version",
        "quantity",
        *_PERIOD,
        "reason",
    ),
    "Subscription.QuantityChanged": ("quantity",),
    "Subscription.Paused": (),
    "Subscription.Resumed": _PERIOD,
    "Subscription.Reactivated": ("kind", *_PERIOD, "plan_version"),
    "Subscription.CancellationScheduled": ("cancel_at", "reason"),
    "Subscription.Churned": ("kind", "reason", "written_off"),
    "Subscription.Invoiced": (
        "number",
        "currency",
        "reason",
        "lines",
        "subtotal",
        "tax",
        "total",
        "credit_applied",
        "amount_due",
        *_PERIOD,
    ),
    "Subscription.PaymentSucceeded": ("number", "currency", "amount", "attempt", "reference"),
    "Subscription.PaymentFailed": (
        "number",
        "currency",
        "amount",
        "attempt",
        "reason",
        "next_retry_at",
    ),
    "Subscription.RenewalReminderIssued": ("currency", "renews_at", "expected_amount"),
    "Subscription.CreditNoteIssued": (
        "number",
        "invoice",
        "currency",
        "amount",
        "reason",
        "method",
        "lines",
    ),
    "Subscription.RefundSucceeded": (
        "credit_note",
        "invoice_number",
        "currency",
        "amount",
        "reference",
    ),
    "Subscription.RefundFailed": (
        "credit_note",
        "invoice_number",
        "currency",
        "amount",
        "failure_code",
        "failure_message",
    ),
    "Subscription.TrialEndingSoon": ("currency", "trial_end", "expected_amount"),
    "Customer.CreditGranted": (
        "currency",
        "amount",
        "reason",
        "source",
        "reference",
        "balance_after",
    ),
}
# Fields a body names otherwise than its event does.
RENAMED: dict[str, str] = {"invoice": "invoice_number"}

MAX_URL = 2048
MAX_ENDPOINTS = 100  # per ledger: one aggregate holds them all


def webhook_type(event_name: str) -> str | None:
    """The type `event_name` is sent as, or None: not every event is a webhook."""
    return TYPES.get(event_name)


def _plain(value: Any) -> Any:
    """JSON-ready: times as ISO 8601 UTC text, containers copied."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def webhook_data(
    event_name: str, data: dict[str, Any], *, subscription_id: str | None = None
) -> dict[str, Any]:
    """The body's `data` for one event: its ids and the whitelisted fields, nothing else.

    Subscription events carry `status` and `mrr` after them, so every subscription body
    says the state it left the subscription in.
    """
    out: dict[str, Any] = {}
    if data.get("customer_id") is not None:
        out["customer_id"] = data["customer_id"]
    if event_name.startswith("Subscription."):
        if subscription_id is not None:
            out["subscription_id"] = subscription_id
        for name in ("status", "mrr"):
            if name in data:
                out[name] = data[name]
    if event_name in (
        "Subscription.TrialConverted",
        "Subscription.Renewed",
        "Subscription.PlanChanged",
        "Subscription.QuantityChanged",
        "Subscription.Paused",
        "Subscription.Resumed",
        "Subscription.Reactivated",
    ):
        out["change"] = event_name.partition(".")[2]
    for name in FIELDS.get(event_name, ()):
        if name in data:
            out[RENAMED.get(name, name)] = _plain(data[name])
    return out


def check_url(url: object) -> str:
    """An endpoint's URL: http(s), a host, no credentials (they would be in the events)."""
    lim.check_text(url, "the endpoint's URL", limit=MAX_URL)
    assert isinstance(url, str)
    if any(ch.isspace() for ch in url):
        raise InvalidInput("the endpoint's URL must not contain spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidInput("the endpoint's URL is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            "the endpoint's URL must be an http:// or https:// URL with a host,"
            " such as https://crm.example.com/hooks/subledger"
        )
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(
            "the endpoint's URL must not hold a user name or password (it is recorded in"
            " the events); the signature authenticates the ledger to the receiver"
        )
    if parts.fragment:
        raise InvalidInput("the endpoint's URL must not have a #fragment")
    if port == 0:
        raise InvalidInput("the endpoint's URL must not use port 0")
    return url


def check_types(types: object) -> tuple[str, ...]:
    """The types an endpoint subscribes to: known ones, each once; none means all."""
    if not isinstance(types, tuple | list):
        raise InvalidInput("event_types must be a list of webhook types")
    for t in types:
        if t not in WEBHOOK_TYPES:
            raise InvalidInput(
                f"unknown webhook type {lim.quote(t)}: use one of {', '.join(WEBHOOK_TYPES)}"
            )
    if len(set(types)) != len(types):
        raise InvalidInput("event_types lists a webhook type twice")
    return tuple(types)
