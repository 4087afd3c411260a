"""Billing: the clock that runs due work, payments collected by hand, and the reads of
subscriptions, invoices, payments and a subscription's history."""

from __future__ import annotations

import heapq

import click

from domain import commands as c
from domain.errors import InvalidInput
from domain.money import parse_amount
from domain.subscription.status import Status
from verbs import reads
from verbs.app import App, parse_time
from verbs.command import issue
from verbs.options import command_options, format_option, publish_options
from verbs.render import show


@click.command("record-payment")
@click.argument("subscription_id")
@click.argument("invoice_number")
@click.option("--amount", required=True, help="The amount due, e.g. 12.00.")
@click.option("--currency", required=True, help="The invoice's currency (ISO 4217).")
@click.option("--reference", required=True, help="Bank or payments-team reference (not blank).")
@command_options
@format_option
@click.pass_context
def record_payment(
    ctx, subscription_id, invoice_number, amount, currency, reference, at_, command_id, actor, fmt
):
    """Record a payment collected outside the gateway for an open invoice."""
    issue(
        ctx,
        c.RecordPayment,
        at_,
        command_id,
        actor,
        fmt,
        subscription_id=subscription_id,
        invoice_number=invoice_number,
        amount=parse_amount(amount, currency.upper()),
        currency=currency.upper(),
        reference=reference,
    )


@click.group()
def clock() -> None:
    """The ledger's clock: run what is due."""


@clock.command("advance")
@click.option("--to", "to", required=True, help="Run everything due up to this time.")
@click.option("--command-id")
@click.option("--actor")
@publish_options
@format_option
@click.pass_context
def clock_advance(ctx, to, command_id, actor, fmt):
    """Run renewals, invoices, charges, retries, trial ends and cancellations due up to --to,
    in time order."""
    issue(ctx, c.AdvanceClock, to, command_id, actor, fmt, at_option="--to")


@clock.command("show")
@format_option
@click.pass_obj
def clock_show(app: App, fmt: str) -> None:
    """How far the clock has been advanced."""
    show({"clock": app.runtime.ledger.clock_now()}, fmt)


@click.group()
def subscription() -> None:
    """Read subscriptions."""


@subscription.command("show")
@click.argument("subscription_id")
@click.option("--as-of", "as_of", help="As it stood at this effective time (from the store).")
@format_option
@click.pass_obj
def subscription_show(app: App, subscription_id: str, as_of: str | None, fmt: str) -> None:
    """Status, plan, quantity, current period, open invoices (now, or --as-of a past time)."""
    from projections import reports

    at = parse_time(as_of, "--as-of")
    if at is not None:
        from projections.as_of import subscription_at

        show(subscription_at(app.runtime.ledger, subscription_id, at), fmt)
        return
    row = reports.subscription(app.runtime.db, subscription_id)
    if row is None:
        raise InvalidInput(f"unknown subscription '{subscription_id}'")
    show(row, fmt)


@subscription.command("list")
@click.option("--customer")
@click.option("--status", type=click.Choice([status.value for status in Status]))
@click.option("--renewing-before", help="Upcoming renewals up to this time.")
@format_option
@click.pass_obj
def subscription_list(app: App, customer, status, renewing_before, fmt) -> None:
    """Subscriptions, soonest renewal first."""
    from projections import reports

    rows = reports.subscriptions(
        app.runtime.db, customer, status, parse_time(renewing_before, "--renewing-before")
    )
    show(rows, fmt, columns=reads.SUBSCRIPTION_COLUMNS)


@click.group()
def invoices() -> None:
    """Read invoices."""


@invoices.command("list")
@click.option("--customer")
@click.option("--subscription")
@click.option("--status", type=click.Choice(["open", "paid", "uncollectible"]))
@click.option(
    "--as-of", "as_of", help="Those issued by this effective time, with their status then."
)
@format_option
@click.pass_obj
def invoices_list(app: App, customer, subscription, status, as_of, fmt) -> None:
    """Invoices with their lines (JSON shows the lines)."""
    from projections import reports

    at = parse_time(as_of, "--as-of")
    if at is None:
        rows = reports.invoices(app.runtime.db, customer, subscription, status)
    else:
        from projections.as_of import subscription_invoices_at

        subs = [subscription] if subscription else []
        if not subscription:
            subs = [s["subscription_id"] for s in reports.subscriptions(app.runtime.db, customer)]
        rows = []
        for sub_id in subs:
            rows += subscription_invoices_at(app.runtime.ledger, sub_id, at)
        rows = [
            {k: v for k, v in r.items() if k != "next_retry_at"}
            for r in sorted(rows, key=lambda r: r["number"])
            if (not customer or r["customer_id"] == customer)
            and (not status or r["status"] == status)
        ]
    show(rows, fmt, columns=reads.INVOICE_COLUMNS)


@click.group()
def payments() -> None:
    """Read payments: every charge attempt, succeeded or failed."""


@payments.command("list")
@click.option("--customer")
@click.option("--subscription")
@click.option("--outcome", type=click.Choice(["succeeded", "failed"]))
@format_option
@click.pass_obj
def payments_list(app: App, customer, subscription, outcome, fmt) -> None:
    """Charge attempts oldest first, with the decline reason and the gateway's reference."""
    from projections import reports

    rows = reports.payments(app.runtime.db, customer, subscription, outcome)
    show(rows, fmt, columns=reads.PAYMENT_COLUMNS)


@click.command()
@click.argument("subscription_id", required=False)
@click.option(
    "--customer", "customer_id", help="The customer's events and all their subscriptions'."
)
@format_option
@click.pass_obj
def history(app: App, subscription_id: str | None, customer_id: str | None, fmt: str) -> None:
    """Every event of a subscription (or a customer and their subscriptions) in effective-time
    order, with when it was recorded, who asked and from where (from the store)."""
    from domain.identity import customer_uuid, subscription_uuid

    if (subscription_id is None) == (customer_id is None):
        raise InvalidInput("history takes a subscription id or --customer ID (one of them)")
    ledger = app.runtime.ledger
    if subscription_id is not None:
        events = ledger.history(subscription_uuid(subscription_id))
        if not events:
            raise InvalidInput(f"unknown subscription '{subscription_id}'")
        streams = [(subscription_id, events)]
    else:
        from projections import reports

        events = ledger.history(customer_uuid(customer_id))
        if not events:
            raise InvalidInput(f"unknown customer '{customer_id}'")
        subs = [s["subscription_id"] for s in reports.subscriptions(app.runtime.db, customer_id)]
        streams = [(None, events)] + [
            (s, ledger.history(subscription_uuid(s))) for s in sorted(subs)
        ]
    # merged by effective time, then recorded time (none, from before recorded_at existed,
    # first); each record's own events keep their version order, the customer's come first
    rows = list(
        heapq.merge(
            *(history_rows(events, sub_id, fmt) for sub_id, events in streams),
            key=lambda r: (r["at"], r["recorded_at"]),
        )
    )
    show(rows, fmt, columns=reads.HISTORY_COLUMNS)


def history_rows(events: list, subscription_id: str | None, fmt: str) -> list[dict]:
    """One row per event, with its metadata; JSON adds the event's data."""
    from domain.base import iso
    from schemas.records import to_record

    rows = []
    currency = None  # the subscription's, carried to the events that do not repeat it
    for event in events:
        rec = to_record(event)
        currency = rec.data.get("currency") or currency
        rows.append(
            {
                "at": iso(rec.at),
                "recorded_at": rec.meta.get("recorded_at") or "",
                "aggregate": rec.aggregate_type,
                "subscription_id": subscription_id,
                "version": rec.version,
                "event": rec.type,
                "status": rec.data.get("status"),
                "currency": currency,
                "mrr": rec.data.get("mrr"),
                "actor": rec.meta.get("actor"),
                "source": rec.meta.get("source"),
                "command": rec.meta.get("command"),
                "command_id": rec.meta.get("command_id"),
                "correlation_id": rec.meta.get("correlation_id"),
                **({"data": rec.data} if fmt == "json" else {}),
            }
        )
    return rows


COMMANDS: list[click.Command] = [record_payment, clock, subscription, invoices, payments, history]
