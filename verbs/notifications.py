"""Notifications: the outbox and in-app inbox (`notifications list|read`), and delivering
what is due (`notifications deliver`, and after every CLI command that recorded events)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import click

from domain import commands as c
from domain.errors import NotFound
from domain.notifications.delivery import STATUSES
from domain.notifications.messages import CHANNELS, IN_APP
from verbs.app import App, parse_time
from verbs.command import authorize, require_personal_data
from verbs.errors import Failure
from verbs.options import format_option
from verbs.render import show

NOTIFICATION_COLUMNS = (
    "message_id",
    "created_at",
    "customer_id",
    "template",
    "channel",
    "status",
    "attempts",
    "subject",
    "sent_at",
    "read_at",
    "next_attempt_at",
    "last_error",
)


class Reader:
    """Renders messages as their customers see them, each customer's data resolved once."""

    def __init__(self, app: App) -> None:
        from bootstrap import notifier

        self.app = app
        self.dispatcher = notifier(app.runtime, mailer=None)  # it only renders
        self.profiles: dict[str, dict[str, Any]] = {}

    def render(self, row: dict[str, Any]) -> tuple[str, str]:
        """(subject, body), the personal data resolved now; an erased customer's: nothing."""
        customer = row["customer_id"]
        if customer not in self.profiles:
            self.profiles[customer] = self.app.runtime.ledger.customer_profile(customer)
        profile = self.profiles[customer]
        if profile.get("erased"):
            return "(the customer was erased)", ""
        d = self.dispatcher
        rendered = d.renderer.render(row["template"], d.context(row, profile))
        return rendered.subject, rendered.body


def outbox(
    app: App,
    customer: str | None = None,
    status: str | None = None,
    channel: str | None = None,
    message: str | None = None,
) -> list[dict[str, Any]]:
    filters = [
        ("customer_id", customer),
        ("status", status),
        ("channel", channel),
        ("message_id", message),
    ]
    clause = " AND ".join(f"{k} = ?" for k, v in filters if v is not None)
    return app.runtime.db.query(
        "SELECT * FROM notifications WHERE event_id <> ''"
        + (f" AND {clause}" if clause else "")
        + " ORDER BY created_at, rank, channel",
        [v for _, v in filters if v is not None],
    )


@click.group()
def notifications() -> None:
    """The outbox: messages to customers by email, in-app inbox and webhook, their status."""


@notifications.command("list")
@click.option("--customer", help="Only this customer's messages.")
@click.option("--status", type=click.Choice(STATUSES), help="Only messages in this status.")
@click.option("--channel", type=click.Choice([*CHANNELS, "all"]), default="all", show_default=True)
@format_option
@click.pass_obj
def notifications_list(
    app: App, customer: str | None, status: str | None, channel: str, fmt: str
) -> None:
    """Messages, oldest first, with their delivery status (the in-app inbox: --channel in_app)."""
    require_personal_data(app, "notifications list")  # subjects, errors: names and addresses
    rows, reader = [], Reader(app)
    for row in outbox(app, customer, status, None if channel == "all" else channel):
        try:
            subject = reader.render(row)[0]
        except Exception:  # a broken template: the list still shows the message
            subject = "(cannot be rendered: see `notifications read`)"
        rows.append({k: (subject if k == "subject" else row.get(k)) for k in NOTIFICATION_COLUMNS})
    show(rows, fmt, columns=NOTIFICATION_COLUMNS)


@notifications.command("read")
@click.argument("message_id")
@click.option("--at", "at_", help="When it is read (ISO 8601, UTC); default now.")
@format_option
@click.pass_obj
def notifications_read(app: App, message_id: str, at_: str | None, fmt: str) -> None:
    """Show one message as its customer sees it; an in-app message is then marked read."""
    require_personal_data(app, "notifications read")
    at = parse_time(at_, "--at", bounded=True)
    rows = outbox(app, message=message_id)
    if not rows:
        raise NotFound(f"no message {message_id} (see `subledger notifications list`)")
    row = rows[0]
    subject, body = Reader(app).render(row)
    if row["channel"] == IN_APP and row["status"] == "sent" and not row["read_at"]:
        command = c.MarkNotificationRead(
            command_id=str(uuid.uuid4()),
            at=at or app.now(),
            actor=app.config.actor,
            source="cli",
            message_id=message_id,
            customer_id=row["customer_id"],
        )
        command = command if at else command.implying("at")
        authorize(app, command)  # the CLI is the source `cli`
        app.run(command)
        row = outbox(app, message=message_id)[0]
    shown = {k: row.get(k) for k in NOTIFICATION_COLUMNS if k != "subject"}
    shown.update(subject=subject, body=body, context=json.loads(row["context"] or "{}"))
    if fmt == "table":
        show({k: v for k, v in shown.items() if k not in ("body", "context")}, fmt)
        click.echo(body, nl=False)
        return
    show(shown, fmt)


@notifications.command("deliver")
@click.option(
    "--include-simulated", is_flag=True, help="Also send what `simulate` and `demo` made."
)
@click.option(
    "--budget",
    type=click.FloatRange(0.1, 86_400),
    help="Stop after this many seconds (default: when nothing is due).",
)
@format_option
@click.pass_obj
def notifications_deliver(
    app: App, include_simulated: bool, budget: float | None, fmt: str
) -> None:
    """Deliver every due message now (email needs SUBLEDGER_SMTP_URL)."""
    from bootstrap import notifier

    try:
        dispatcher = notifier(app.runtime)
    except ValueError as exc:  # a setting that cannot work: say which
        raise Failure(str(exc)) from None
    counts = dispatcher.deliver(budget, include_simulated=include_simulated)
    show(counts, fmt)


COMMANDS: list[click.Command] = [notifications]


def deliver_after_command(app: App) -> None:
    """Embedded, after a CLI command that recorded events: send what is due, within
    SUBLEDGER_NOTIFY_BUDGET seconds; the command is recorded, so nothing here may fail it."""
    runtime = app._runtime
    if runtime is None or runtime.kafka_mode:  # Kafka: `serve --workers notifications`
        return
    try:
        from bootstrap import notifier

        notifier(runtime).deliver(budget_s=app.config.notify_budget_s)
    except Exception as exc:
        from domain.pci import mask_card_numbers

        why = mask_card_numbers(" ".join(str(exc).split()))[:200]
        click.echo(
            f"warning: recorded, but notifications were not delivered now ({why});"
            " 'subledger notifications deliver' sends them",
            err=True,
        )
