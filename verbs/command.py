"""From options to a command: build it, then apply it here or produce it to Kafka."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import click

from domain import commands as c
from domain.limits import quote
from domain.policy import Forbidden
from schemas import topics
from verbs.app import App, parse_time
from verbs.errors import Failure
from verbs.render import escape, show_outcome


def issue(
    ctx: click.Context,
    cls: type[c.Command],
    at_: str | None,
    command_id: str | None,
    actor: str | None,
    fmt: str = "table",
    at_option: str = "--at",
    **fields: Any,
) -> dict[str, Any]:
    """Build the command the options describe, then apply it (or publish it) and print it."""
    app: App = ctx.obj
    at = parse_time(at_, at_option, bounded=True)
    command = cls(
        command_id=command_id or str(uuid.uuid4()),
        at=at or app.now(),
        actor=actor if actor is not None else app.config.actor,
        source="cli",
        **fields,
    )
    if at is None:  # now, filled in for the caller: an honest retry is the same request
        command = command.implying("at")
    authorize(app, command)
    if ctx.meta.get("subledger.publish"):
        return publish(
            app,
            command,
            fmt,
            wait=bool(ctx.meta.get("subledger.wait")),
            timeout=float(ctx.meta.get("subledger.timeout") or 30.0),
        )
    outcome = app.run(command)
    # recorded: rendering can no longer make it a failure
    show_outcome(outcome, fmt, debug=app.config.debug)
    return outcome


def authorize(app: App, command: c.Command) -> None:
    """With an access policy, the CLI (source `cli`) issues only what it allows: a refusal is
    one line and records nothing (domain.policy.Forbidden)."""
    policy = app.runtime.policy
    if policy is not None:
        policy.check(command.source, command.command_name)


def require_personal_data(app: App, what: str) -> None:
    """With an access policy, only the actors under `[personal_data] actors` read personal
    data; anyone else is refused before anything is read (README, "Access control")."""
    policy = app.runtime.policy
    actor = app.config.actor
    if policy is not None and not policy.may_read_personal_data(actor):
        raise Forbidden(
            f"{what} shows personal data, which actor {quote(actor)} may not read"
            f" (policy {policy.origin}, [personal_data] actors)"
        )


def with_customer_key(app: App, command: c.Command) -> c.Command:
    """Name the subscription's customer, so the command shares that customer's partition.

    Read from the event store, never the read models: with Kafka they may lag behind."""
    from domain.identity import subscription_uuid
    from domain.subscription import Subscription

    sub_id = getattr(command, "subscription_id", None)
    if sub_id is None or getattr(command, "customer_id", "") is not None:
        return command
    sub = app.runtime.ledger.get(Subscription, subscription_uuid(sub_id))
    if sub is None:  # unknown: the ledger rejects it, keyed by the subscription
        return command
    keyed = dataclasses.replace(command, customer_id=sub.customer_id)
    return keyed.implying("customer_id")  # filled in here, not asked for by the caller


def publish(app: App, command: c.Command, fmt: str, *, wait: bool, timeout: float) -> dict:
    """Produce to the commands topic; with `wait`, report what the ledger made of it."""
    from consumers.commands import Publisher

    if not app.config.kafka_bootstrap:
        raise Failure("--publish needs SUBLEDGER_KAFKA_BOOTSTRAP")
    command = with_customer_key(app, command)
    publisher = Publisher(app.config)
    try:
        publisher.publish(command, remember_rejections=wait)
        if not wait:
            click.echo(escape(command.command_id))
            return {"command_id": command.command_id}
        outcome = publisher.wait(app.runtime.ledger, command.command_id, timeout)
    finally:
        publisher.close()
    result = {"command_id": command.command_id, "outcome": outcome.status, **outcome.detail}
    show_outcome(result, fmt, debug=app.config.debug)
    if outcome.status == "rejected":
        raise Failure(f"rejected: {outcome.detail.get(topics.H_REASON, '')}")
    if outcome.status == "timeout":
        raise Failure(f"no outcome for {command.command_id} within {timeout:g}s")
    return result
