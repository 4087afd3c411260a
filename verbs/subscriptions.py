"""A subscription's life: subscribe, change plan, cancel, pause, resume, reactivate."""

from __future__ import annotations

import uuid

import click

from domain import commands as c
from verbs.command import issue
from verbs.options import command_options, format_option


@click.command()
@click.argument("customer_id")
@click.argument("plan_id")
@click.option(
    "--subscription-id",
    help="1-200 characters; default: an id derived from --command-id (so a retry of the"
    " same line with the same --command-id is the same subscription).",
)
@click.option(
    "--quantity",
    type=click.IntRange(1, 1_000_000),
    default=1,
    show_default=True,
    help="Seats or units (a flat-priced plan takes exactly 1).",
)
@click.option("--coupon")
@click.option(
    "--anchor-day",
    type=click.IntRange(1, 28),
    help="Bill on this day of the month (1-28); the first period is prorated.",
)
@command_options
@format_option
@click.pass_context
def subscribe(
    ctx,
    customer_id,
    plan_id,
    subscription_id,
    quantity,
    coupon,
    anchor_day,
    at_,
    command_id,
    actor,
    fmt,
):
    """Subscribe CUSTOMER_ID to PLAN_ID (invoiced and charged now unless trialing)."""
    command_id = command_id or str(uuid.uuid4())
    sub_id = subscription_id or f"sub_{uuid.uuid5(uuid.NAMESPACE_OID, command_id).hex[:12]}"
    issue(
        ctx,
        c.Subscribe,
        at_,
        command_id,
        actor,
        fmt,
        customer_id=customer_id,
        plan_id=plan_id,
        subscription_id=sub_id,
        quantity=quantity,
        coupon=coupon,
        anchor_day=anchor_day,
    )


@click.command("change-plan")
@click.argument("subscription_id")
@click.argument("plan_id")
@click.option(
    "--quantity",
    type=click.IntRange(1, 1_000_000),
    help="New seats or units (default: kept; 1 on a flat-priced plan).",
)
@command_options
@format_option
@click.pass_context
def change_plan(ctx, subscription_id, plan_id, quantity, at_, command_id, actor, fmt):
    """Move a subscription to PLAN_ID and/or a new quantity now, prorated by the second."""
    issue(
        ctx,
        c.ChangePlan,
        at_,
        command_id,
        actor,
        fmt,
        subscription_id=subscription_id,
        plan_id=plan_id,
        quantity=quantity,
    )


@click.command()
@click.argument("subscription_id")
@click.option("--immediately", is_flag=True, help="Churn now instead of at period end.")
@click.option("--reason", default="customer_request", show_default=True)
@command_options
@format_option
@click.pass_context
def cancel(ctx, subscription_id, immediately, reason, at_, command_id, actor, fmt):
    """Cancel at period end (default) or immediately."""
    issue(
        ctx,
        c.Cancel,
        at_,
        command_id,
        actor,
        fmt,
        subscription_id=subscription_id,
        immediately=immediately,
        reason=reason,
    )


def _simple(name: str, cls: type[c.Command], doc: str) -> click.Command:
    """A verb that takes only the subscription and the common options."""

    @click.command(name, help=doc)
    @click.argument("subscription_id")
    @command_options
    @format_option
    @click.pass_context
    def verb(ctx, subscription_id, at_, command_id, actor, fmt):
        issue(ctx, cls, at_, command_id, actor, fmt, subscription_id=subscription_id)

    return verb


COMMANDS: list[click.Command] = [
    subscribe,
    change_plan,
    cancel,
    _simple("pause", c.Pause, "Pause billing; MRR stops until resumed."),
    _simple(
        "resume", c.Resume, "Resume a paused subscription (a new period if the paid one ended)."
    ),
    _simple(
        "reactivate",
        c.Reactivate,
        "Withdraw a scheduled cancellation, or restart a churned subscription.",
    ),
]
