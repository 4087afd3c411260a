"""Credit: refunds (credit notes), credit granted by hand, and the reads of both."""

from __future__ import annotations

import click

from domain import commands as c
from domain.errors import InvalidInput
from domain.money import exponent, parse_amount
from verbs import reads
from verbs.app import App
from verbs.command import issue
from verbs.options import command_options, format_option
from verbs.render import show


@click.command("refund")
@click.argument("invoice_number")
@click.option("--amount", help="How much to refund, e.g. 12.50; default: all that is left.")
@click.option("--reason", default="requested_by_customer", show_default=True)
@click.option("--subscription", "subscription_id", help="The invoice's subscription.")
@command_options
@format_option
@click.pass_context
def refund(
    ctx, invoice_number, amount, reason, subscription_id, at_, command_id, actor, fmt
) -> None:
    """Refund a paid invoice in full or in part: a credit note (CN-...), refunded through the
    gateway; an invoice paid outside it (record-payment) goes to the customer's credit."""
    app: App = ctx.obj
    from projections import reports

    owner = reports.invoice_owner(app.runtime.db, invoice_number)
    if owner is None and subscription_id is None:
        raise InvalidInput(
            f"unknown invoice '{invoice_number}': check the number (invoices list), or name its"
            " subscription with --subscription"
        )
    if owner is not None and subscription_id not in (None, owner["subscription_id"]):
        raise InvalidInput(
            f"--subscription: invoice {invoice_number} belongs to subscription"
            f" '{owner['subscription_id']}', not '{subscription_id}' (leave the option out)"
        )
    minor = None
    if amount is not None:
        if owner is None:
            raise InvalidInput(f"--amount: the currency of invoice {invoice_number} is not known")
        minor = parse_amount(amount, owner["currency"])
    issue(
        ctx,
        c.RefundInvoice,
        at_,
        command_id,
        actor,
        fmt,
        subscription_id=subscription_id or (owner or {})["subscription_id"],
        invoice_number=invoice_number,
        amount=minor,
        reason=reason,
    )


@click.group()
def credit() -> None:
    """A customer's credit: spent on their next invoices in its currency, any subscription."""


@credit.command("grant")
@click.argument("customer_id")
@click.option("--amount", required=True, help="The credit, e.g. 25.00.")
@click.option("--currency", required=True, help="ISO 4217, e.g. USD.")
@click.option("--reason", required=True, help="Why (kept with the credit).")
@command_options
@format_option
@click.pass_context
def credit_grant(ctx, customer_id, amount, currency, reason, at_, command_id, actor, fmt) -> None:
    """Give a customer credit; their next invoices in that currency spend it first."""
    currency = currency.upper()
    exponent(currency)
    issue(
        ctx,
        c.GrantCredit,
        at_,
        command_id,
        actor,
        fmt,
        customer_id=customer_id,
        currency=currency,
        amount=parse_amount(amount, currency),
        reason=reason,
    )


@credit.command("history")
@click.argument("customer_id")
@format_option
@click.pass_obj
def credit_history(app: App, customer_id: str, fmt: str) -> None:
    """How a customer's credit moved: granted (+) and spent on invoices (-), oldest first."""
    from projections import reports

    rows = [
        {**{k: v for k, v in row.items() if k != "balance_after"}, "credit": row["balance_after"]}
        for row in reports.customer_credit(app.runtime.db, customer_id)
    ]
    show(rows, fmt, columns=reads.CREDIT_MOVEMENT_COLUMNS)


@click.group("credit-notes")
def credit_notes() -> None:
    """Read credit notes (refunds and credit to a customer's balance)."""


@credit_notes.command("list")
@click.option("--customer")
@click.option("--invoice")
@format_option
@click.pass_obj
def credit_notes_list(app: App, customer: str | None, invoice: str | None, fmt: str) -> None:
    """Credit notes oldest first, with their refund's status (JSON shows the lines)."""
    from projections import reports

    rows = reports.credit_notes(app.runtime.db, customer, invoice)
    if fmt != "json":
        rows = [{k: v for k, v in row.items() if k != "lines"} for row in rows]
    show(rows, fmt, columns=reads.CREDIT_NOTE_COLUMNS)


COMMANDS: list[click.Command] = [refund, credit, credit_notes]
