"""Customers: register, update, show, erase (crypto-shredding)."""

from __future__ import annotations

import click

from domain import commands as c
from domain.errors import InvalidInput
from verbs.app import App
from verbs.command import issue, require_personal_data
from verbs.options import command_options, format_option
from verbs.render import show


@click.group()
def customer() -> None:
    """Register, update, show and erase customers."""


@customer.command("register")
@click.argument("customer_id")
@click.option("--name", required=True)
@click.option("--email", required=True)
@click.option("--country", default="US", show_default=True, help="ISO 3166 alpha-2.")
@click.option(
    "--payment-token", required=True, help="A gateway token such as tok_visa; never a card number."
)
@click.option("--preference", "preferences", multiple=True, help="KEY=VALUE, repeatable.")
@command_options
@format_option
@click.pass_context
def customer_register(
    ctx, customer_id, name, email, country, payment_token, preferences, at_, command_id, actor, fmt
):
    """Register a customer (personal data is stored encrypted with their own key)."""
    prefs = parse_preferences(preferences)
    issue(
        ctx,
        c.RegisterCustomer,
        at_,
        command_id,
        actor,
        fmt,
        customer_id=customer_id,
        name=name,
        email=email,
        country=country.upper(),
        payment_token=payment_token,
        preferences=prefs,
    )


@customer.command("update")
@click.argument("customer_id")
@click.option("--name")
@click.option("--email")
@click.option("--country")
@click.option("--payment-token")
@click.option(
    "--preference",
    "preferences",
    multiple=True,
    help="KEY=VALUE, repeatable: sets these keys, keeps the others (e.g. notify.email=off).",
)
@command_options
@format_option
@click.pass_context
def customer_update(
    ctx, customer_id, name, email, country, payment_token, preferences, at_, command_id, actor, fmt
):
    """Change a customer's contact details, payment token or preferences."""
    issue(
        ctx,
        c.UpdateCustomer,
        at_,
        command_id,
        actor,
        fmt,
        customer_id=customer_id,
        name=name,
        email=email,
        country=country.upper() if country else None,
        payment_token=payment_token,
        preferences=parse_preferences(preferences) or None,
    )


def parse_preferences(preferences: tuple[str, ...]) -> dict[str, str]:
    if any("=" not in p for p in preferences):
        raise InvalidInput("--preference takes KEY=VALUE (e.g. --preference notify.email=off)")
    return dict(p.split("=", 1) for p in preferences)


@customer.command("erase")
@click.argument("customer_id")
@command_options
@format_option
@click.pass_context
def customer_erase(ctx, customer_id, at_, command_id, actor, fmt):
    """GDPR erasure: destroy the customer's key; amounts and dates stay, the person goes."""
    issue(ctx, c.EraseCustomer, at_, command_id, actor, fmt, customer_id=customer_id)


@customer.command("show")
@click.argument("customer_id")
@click.option("--as-of", "as_of", help="As they stood at this effective time (from the store).")
@format_option
@click.pass_obj
def customer_show(app: App, customer_id: str, as_of: str | None, fmt: str) -> None:
    """A customer's profile (decrypted), subscriptions and balance (now, or --as-of a time)."""
    require_personal_data(app, "customer show")
    from projections import reports
    from verbs.app import parse_time

    at = parse_time(as_of, "--as-of")
    subs = [
        s["subscription_id"] for s in reports.subscriptions(app.runtime.db, customer=customer_id)
    ]
    if at is not None:
        from projections.as_of import customer_at

        show(customer_at(app.runtime.ledger, customer_id, sorted(subs), at), fmt)
        return
    profile = app.runtime.ledger.customer_profile(customer_id)
    profile["balance"] = reports.balance(app.runtime.db, customer_id)
    profile["subscriptions"] = subs
    show(profile, fmt)


@customer.command("note")
@click.argument("customer_id")
@click.option(
    "--channel",
    type=click.Choice(["email", "phone", "chat", "other"]),
    required=True,
    help="How the customer got in touch.",
)
@click.option("--text", required=True, help="What was said or done (stored encrypted).")
@command_options
@format_option
@click.pass_context
def customer_note(ctx, customer_id, channel, text, at_, command_id, actor, fmt):
    """Record a support interaction (the support log; the text is personal data)."""
    issue(
        ctx,
        c.RecordCustomerNote,
        at_,
        command_id,
        actor,
        fmt,
        customer_id=customer_id,
        channel=channel,
        text=text,
    )


@customer.command("timeline")
@click.argument("customer_id")
@format_option
@click.pass_obj
def customer_timeline(app: App, customer_id: str, fmt: str) -> None:
    """Everything about a customer in time order: events, invoices, payments, credit notes,
    notifications with their delivery status, and support notes."""
    require_personal_data(app, "customer timeline")
    from verbs.timeline import TIMELINE_COLUMNS, timeline

    rows = timeline(app, customer_id)
    show(rows, fmt, title=f"customer {customer_id}", columns=TIMELINE_COLUMNS)


@customer.command("export")
@click.argument("customer_id")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the JSON to this file (readable by its owner only) instead of stdout.",
)
@click.pass_obj
def customer_export(app: App, customer_id: str, output: str | None) -> None:
    """Everything held about a customer, as JSON, for a subject-access request: the
    decrypted profile and support notes, subscriptions, invoices, payments, credit,
    notifications and the event history. Erased: what remains, no personal data."""
    require_personal_data(app, "customer export")
    from verbs.audit import subject_access
    from verbs.render import to_json

    text = to_json(subject_access(app, customer_id)) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    import os

    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    click.echo(f"customer {customer_id}: exported to {output}")


COMMANDS: list[click.Command] = [customer]
