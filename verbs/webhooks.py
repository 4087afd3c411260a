"""Webhooks for CRM and other systems: endpoints, the delivery log, replays, delivering now.

Embedded, due deliveries go out at the end of every command that recorded something
(`deliver_after_command`, at most SUBLEDGER_WEBHOOK_BUDGET seconds, never failing the
command) and with `webhook deliver`; with Kafka, `serve --workers webhooks` sends them.
"""

from __future__ import annotations

import sys
import time
import uuid
from typing import TYPE_CHECKING

import click

from domain import commands as c
from domain.errors import InvalidInput
from domain.identity import in_letters
from domain.limits import has_control
from domain.pci import find_card_number
from domain.webhooks.delivery import STATUSES
from domain.webhooks.types import WEBHOOK_TYPES, check_types, check_url
from verbs.app import App
from verbs.command import issue
from verbs.errors import Failure
from verbs.options import command_options, format_option
from verbs.render import show

if TYPE_CHECKING:
    from adapters.secrets import SecretStore

MIN_SECRET, MAX_SECRET = 16, 200


@click.group()
def webhook() -> None:
    """Webhooks: signed JSON POSTs of what the ledger records, to CRM and other systems."""


def _secret(value: str) -> str:
    """`-` reads it from stdin, so it need not be in the shell history or the process list."""
    if value == "-":
        value = sys.stdin.readline().rstrip("\r\n")
    if find_card_number(value):  # refused everywhere, a secret too; never echoed
        raise InvalidInput("--secret looks like a payment card number: choose a random secret")
    if not MIN_SECRET <= len(value) <= MAX_SECRET or has_control(value) or value != value.strip():
        raise InvalidInput(
            f"--secret must be {MIN_SECRET}-{MAX_SECRET} characters without spaces at either"
            " end or control characters (e.g. the output of 'openssl rand -hex 32')"
        )
    return value


def _types(events: str | None) -> tuple[str, ...]:
    if not events:
        return ()
    return check_types(tuple(t.strip() for t in events.split(",") if t.strip()))


@webhook.command("add")
@click.argument("url")
@click.option(
    "--secret",
    required=True,
    help="The signing secret the receiver verifies with (16-200 characters; '-' reads it"
    " from stdin). Stored encrypted apart from the events; never shown again.",
)
@click.option(
    "--events",
    help=f"Comma-separated webhook types; default every type ({', '.join(WEBHOOK_TYPES)}).",
)
@click.option(
    "--include-personal-data",
    is_flag=True,
    help="Add the customer's name and email to the bodies (never for an erased customer).",
)
@command_options
@format_option
@click.pass_context
def webhook_add(ctx, url, secret, events, include_personal_data, at_, command_id, actor, fmt):
    """Add an endpoint: from now on, the events it subscribes to are POSTed to URL."""
    app: App = ctx.obj
    types = _types(events)
    check_url(url)
    secret = _secret(secret)
    command_id = command_id or str(uuid.uuid4())
    endpoint_id = in_letters("we_", uuid.uuid5(uuid.NAMESPACE_OID, command_id), 16)
    from consumers.webhooks import start_at_head

    store = _secrets(app)
    try:
        had = store.get(endpoint_id) is not None
        if not store.put_new(endpoint_id, secret):
            raise Failure(
                f"--command-id {command_id} was already used with another --secret;"
                " use a new command id"
            )
        try:
            if not app.runtime.kafka_mode and not ctx.meta.get("subledger.publish"):
                start_at_head(app.runtime.ledger)  # events before the endpoint are not its
            issue(
                ctx,
                c.AddWebhookEndpoint,
                at_,
                command_id,
                actor,
                fmt,
                endpoint_id=endpoint_id,
                url=url,
                event_types=types,
                include_personal_data=include_personal_data,
            )
        except BaseException:
            if not had:  # nothing recorded: nothing kept
                store.delete(endpoint_id)
            raise
    finally:
        store.close()


@webhook.command("remove")
@click.argument("endpoint_id")
@command_options
@format_option
@click.pass_context
def webhook_remove(ctx, endpoint_id, at_, command_id, actor, fmt):
    """Remove an endpoint: it receives nothing more, and its secret is deleted."""
    app: App = ctx.obj
    issue(ctx, c.RemoveWebhookEndpoint, at_, command_id, actor, fmt, endpoint_id=endpoint_id)
    if not ctx.meta.get("subledger.publish"):
        store = _secrets(app)
        try:
            store.delete(endpoint_id)
        finally:
            store.close()


@webhook.command("list")
@format_option
@click.pass_obj
def webhook_list(app: App, fmt: str) -> None:
    """Endpoints, active and removed (secrets are never shown)."""
    from projections import webhooks as model

    rows = model.endpoints(app.runtime.db)
    if fmt != "json":
        for row in rows:
            row["event_types"] = ",".join(row["event_types"]) or "*"
    show(rows, fmt, columns=model.ENDPOINT_COLUMNS)


@webhook.command("deliveries")
@click.option("--status", type=click.Choice([*STATUSES, "canceled"]))
@click.option("--endpoint", "endpoint_id", help="Only this endpoint's deliveries.")
@click.option("--customer", "customer_id", help="Only this customer's events.")
@format_option
@click.pass_obj
def webhook_deliveries(app: App, status, endpoint_id, customer_id, fmt) -> None:
    """The delivery log: each event for each endpoint, its attempts and status."""
    from projections import webhooks as model

    rows = model.deliveries(app.runtime.db, status, endpoint_id, customer_id)
    if fmt == "json":
        for row in rows:
            row["attempt_log"] = model.attempts(app.runtime.db, row["delivery_id"])
    show(rows, fmt, columns=model.DELIVERY_COLUMNS)


@webhook.command("replay")
@click.argument("delivery_id")
@command_options
@format_option
@click.pass_context
def webhook_replay(ctx, delivery_id, at_, command_id, actor, fmt):
    """Send a delivery again (same body id), whatever became of it."""
    issue(ctx, c.ReplayWebhookDelivery, at_, command_id, actor, fmt, delivery_id=delivery_id)


@webhook.command("deliver")
@click.option(
    "--timeout",
    type=click.FloatRange(0, 86_400, min_open=True),
    default=60.0,
    show_default=True,
    help="Stop after this many seconds (what is left goes next time).",
)
@format_option
@click.pass_obj
def webhook_deliver(app: App, timeout: float, fmt: str) -> None:
    """Deliver every due webhook now (embedded; with Kafka, `serve --workers webhooks`)."""
    from consumers.webhooks import dispatcher_for

    runtime = app.runtime
    if runtime.kafka_mode:
        raise Failure("with Kafka, 'subledger serve --workers webhooks' delivers the webhooks")
    dispatcher = dispatcher_for(runtime, app.config)
    try:
        counts = dispatcher.run_once(time.monotonic() + timeout)
    finally:
        dispatcher.close()
    show(counts, fmt)


def _secrets(app: App) -> SecretStore:
    from adapters.secrets import secret_store

    config = app.config
    return secret_store(config.event_store, config.data_dir, config.webhook_secrets_key)


def deliver_after_command(app: App) -> None:
    """Embedded: after a recorded command, deliver what is due, for at most the budget.

    The command is recorded: nothing here may fail it, so any trouble is one warning line
    (`webhook deliver` tries again; the deliveries wait in the log).
    """
    runtime = app._runtime
    budget = app.config.webhook_budget_s
    if runtime is None or runtime.kafka_mode or budget <= 0:
        return
    try:
        from consumers.webhooks import dispatcher_for, has_endpoints

        if not has_endpoints(runtime.ledger):
            return
        dispatcher = dispatcher_for(runtime, app.config)
        try:
            dispatcher.run_once(time.monotonic() + budget)
        finally:
            dispatcher.close()
    except Exception as exc:
        from domain.pci import mask_card_numbers
        from verbs.render import escape

        why = escape(mask_card_numbers(" ".join(str(exc).split())))[:200]
        click.echo(
            f"warning: recorded, but webhooks were not delivered now ({why});"
            " 'subledger webhook deliver' tries again",
            err=True,
        )


COMMANDS: list[click.Command] = [webhook]
