"""The options verbs share: when a command takes effect, its id, who asks, how to send it,
and the output format."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

FORMATS = click.Choice(["table", "json", "csv"])


def format_option(fn: Callable) -> Callable:
    """--format: a table for people, JSON or CSV (integer minor units) for machines."""
    return click.option(
        "--format",
        "fmt",
        type=FORMATS,
        default="table",
        show_default=True,
        help="Output format; JSON and CSV amounts are integer minor units.",
    )(fn)


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    ctx.meta[f"subledger.{param.name}"] = value
    return value


def publish_options(fn: Callable) -> Callable:
    """--publish / --wait / --timeout: send the command through Kafka instead of applying it."""
    fn = click.option(
        "--timeout",
        type=click.FloatRange(0, 86_400, min_open=True),
        default=30.0,
        show_default=True,
        expose_value=False,
        callback=_remember,
        help="With --wait: seconds to wait for the outcome.",
    )(fn)
    fn = click.option(
        "--wait",
        is_flag=True,
        expose_value=False,
        callback=_remember,
        help="With --publish: wait until it is applied or rejected.",
    )(fn)
    fn = click.option(
        "--publish",
        is_flag=True,
        expose_value=False,
        callback=_remember,
        help="Produce it to the commands topic (Kafka) and print its id.",
    )(fn)
    return fn


def command_options(fn: Callable) -> Callable:
    """What every command verb takes: when it takes effect, its id, who asks."""
    fn = publish_options(fn)
    fn = click.option("--at", "at_", help="Effective time (ISO 8601, UTC); default now.")(fn)
    fn = click.option(
        "--command-id",
        help="Idempotency key; the same id twice has one effect. Default: a new UUID.",
    )(fn)
    fn = click.option("--actor", help="Who asks (default $SUBLEDGER_ACTOR or $USER).")(fn)
    return fn
