"""`subledger`: the command line. Thin: parse, build a command, call the ledger, print."""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import click

from domain import commands as c
from domain.errors import InvalidInput, LedgerError
from domain.money import format_amount, parse_amount, parse_percent_ppm
from domain.pricing import Pricing, parse_tier
from schemas import topics

FORMATS = click.Choice(["table", "json", "csv"])


class Failure(click.ClickException):
    """One line on stderr, a non-zero exit."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


# ---- context ---------------------------------------------------------------------------


class App:
    def __init__(self, data_dir: str | None) -> None:
        from bootstrap import Config

        self.config = Config.from_env(data_dir=Path(data_dir) if data_dir else None)
        self._runtime: Any = None

    @property
    def runtime(self) -> Any:
        if self._runtime is None:
            from bootstrap import Runtime

            self._runtime = Runtime(self.config)
            if self.config.embedded:  # whatever a crash left behind, reads see it all
                self._runtime.catch_up()
        return self._runtime

    def now(self) -> datetime:
        """Default effective time: the wall clock, or the ledger's clock if it is ahead."""
        now = datetime.now(UTC).replace(microsecond=0)
        clock = self.runtime.ledger.clock_now()
        return max(now, clock) if clock else now

    def run(self, command: c.Command) -> dict[str, Any]:
        outcome = self.runtime.ledger.execute(command)
        self.runtime.catch_up()
        return outcome

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()


def parse_time(text: str | None) -> datetime | None:
    """ISO 8601 date or date-time; without an offset it is UTC."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            parsed = datetime.combine(date.fromisoformat(text), time(0), tzinfo=UTC)
        else:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"'{text}' is not an ISO 8601 date or time (2025-01-31 or 2025-01-31T12:00:00Z)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    ctx.meta[f"subledger.{param.name}"] = value
    return value


def publish_options(fn: Callable) -> Callable:
    """--publish / --wait / --timeout: send the command through Kafka instead of applying it."""
    fn = click.option(
        "--timeout",
        type=float,
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


def issue(
    ctx: click.Context,
    cls: type[c.Command],
    at_: str | None,
    command_id: str | None,
    actor: str | None,
    fmt: str = "table",
    **fields: Any,
) -> dict[str, Any]:
    app: App = ctx.obj
    command = cls(
        command_id=command_id or str(uuid.uuid4()),
        at=parse_time(at_) or app.now(),
        actor=actor or app.config.actor,
        source="cli",
        **fields,
    )
    if ctx.meta.get("subledger.publish"):
        return publish(
            app,
            command,
            fmt,
            wait=bool(ctx.meta.get("subledger.wait")),
            timeout=float(ctx.meta.get("subledger.timeout") or 30.0),
        )
    outcome = app.run(command)
    show(outcome, fmt)
    return outcome


def with_customer_key(app: App, command: c.Command) -> c.Command:
    """Name the subscription's customer, so the command shares that customer's partition."""
    import dataclasses

    from projections import reports

    sub_id = getattr(command, "subscription_id", None)
    if sub_id is None or getattr(command, "customer_id", "") is not None:
        return command
    row = reports.subscription(app.runtime.db, sub_id)
    return dataclasses.replace(command, customer_id=row["customer_id"]) if row else command


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
            click.echo(command.command_id)
            return {"command_id": command.command_id}
        outcome = publisher.wait(app.runtime.ledger, command.command_id, timeout)
    finally:
        publisher.close()
    result = {"command_id": command.command_id, "outcome": outcome.status, **outcome.detail}
    show(result, fmt)
    if outcome.status == "rejected":
        raise Failure(f"rejected: {outcome.detail.get(topics.H_REASON, '')}")
    if outcome.status == "timeout":
        raise Failure(f"no outcome for {command.command_id} within {timeout:g}s")
    return result


# ---- output ----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _rows(data: Any, key: str = "key") -> list[dict[str, Any]]:
    """Flatten for table/CSV: a list of dicts stays; a dict keyed by currency becomes rows."""
    if isinstance(data, list):
        return [{k: v for k, v in row.items() if not isinstance(v, list | dict)} for row in data]
    if isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()):
        return [
            {key: k, **{kk: vv for kk, vv in v.items() if not isinstance(vv, list | dict)}}
            for k, v in data.items()
        ]
    return [
        {"field": k, "value": json.dumps(v) if isinstance(v, list | dict) else v}
        for k, v in data.items()
    ]


def show(data: Any, fmt: str, title: str | None = None, key: str = "key") -> None:
    data = _plain(data)
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=False))
        return
    rows = _rows(data, key)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        click.echo(buffer.getvalue(), nl=False)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*["" if row.get(col) is None else str(row.get(col)) for col in columns])
    Console(width=max(120, len(columns) * 22)).print(table)


def format_option(fn: Callable) -> Callable:
    return click.option(
        "--format",
        "fmt",
        type=FORMATS,
        default="table",
        show_default=True,
        help="Output format; JSON amounts are integer minor units.",
    )(fn)


# ---- the group -------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data-dir",
    envvar="SUBLEDGER_DATA_DIR",
    help="Embedded default's directory (default ./.subledger).",
)
@click.version_option(package_name="subledger")
@click.pass_context
def cli(ctx: click.Context, data_dir: str | None) -> None:
    """subledger: an event-sourced subscription ledger.

    Plans, customers, subscriptions, invoices and payments as an immutable history, with
    read models for billing and metrics. Runs embedded (SQLite under --data-dir) unless
    SUBLEDGER_EVENT_STORE / SUBLEDGER_READ_DB name PostgreSQL databases.
    """
    ctx.obj = App(data_dir)
    ctx.call_on_close(ctx.obj.close)


# ---- plans -----------------------------------------------------------------------------


def pricing_from(model: str, price: str | None, tiers: tuple[str, ...], currency: str) -> dict:
    if model in ("tiered", "volume"):
        if not tiers:
            raise InvalidInput(
                f"a {model} plan needs --tier UP_TO:PRICE (e.g. --tier 10:5.00 --tier inf:4.00)"
            )
        return Pricing(model, 0, tuple(parse_tier(t, currency) for t in tiers)).to_dict()
    if price is None:
        raise InvalidInput("--price is required")
    return Pricing(model, parse_amount(price, currency)).to_dict()


@cli.group()
def plan() -> None:
    """Define, list and reprice plans."""


@plan.command("define")
@click.argument("plan_id")
@click.option("--name", required=True)
@click.option("--price", help="Price per period (flat) or per unit (per_unit), e.g. 10.00.")
@click.option("--currency", required=True, help="ISO 4217 code, e.g. USD.")
@click.option(
    "--interval",
    type=click.Choice(["day", "week", "month", "year"]),
    default="month",
    show_default=True,
)
@click.option("--interval-count", type=int, default=1, show_default=True)
@click.option("--trial-days", type=int, default=0, show_default=True)
@click.option("--feature", "features", multiple=True, help="Repeatable.")
@click.option(
    "--pricing",
    "model",
    type=click.Choice(["flat", "per_unit", "tiered", "volume"]),
    default="flat",
    show_default=True,
)
@click.option(
    "--tier",
    "tiers",
    multiple=True,
    help="UP_TO:UNIT_PRICE[:FLAT_FEE]; 'inf' for the last tier. Repeatable.",
)
@command_options
@format_option
@click.pass_context
def plan_define(
    ctx,
    plan_id,
    name,
    price,
    currency,
    interval,
    interval_count,
    trial_days,
    features,
    model,
    tiers,
    at_,
    command_id,
    actor,
    fmt,
):
    """Define a plan."""
    currency = currency.upper()
    issue(
        ctx,
        c.DefinePlan,
        at_,
        command_id,
        actor,
        fmt,
        plan_id=plan_id,
        name=name,
        currency=currency,
        pricing=pricing_from(model, price, tiers, currency),
        interval=interval,
        interval_count=interval_count,
        trial_days=trial_days,
        features=tuple(features),
    )


@plan.command("change-price")
@click.argument("plan_id")
@click.option("--price")
@click.option("--pricing", "model", type=click.Choice(["flat", "per_unit", "tiered", "volume"]))
@click.option("--tier", "tiers", multiple=True)
@click.option(
    "--apply-to",
    type=click.Choice(["new", "at_renewal", "immediately"]),
    default="new",
    show_default=True,
    help="Who pays the new price: new subscribers only, existing ones from their "
    "next renewal, or everyone now (prorated).",
)
@command_options
@format_option
@click.pass_context
def plan_change_price(ctx, plan_id, price, model, tiers, apply_to, at_, command_id, actor, fmt):
    """Change a plan's price (a new price version)."""
    from projections import reports

    app: App = ctx.obj
    current = {p["plan_id"]: p for p in reports.plans(app.runtime.db)}.get(plan_id)
    if current is None:
        raise InvalidInput(f"unknown plan '{plan_id}'")
    model = model or current["pricing"]["model"]
    issue(
        ctx,
        c.ChangePlanPrice,
        at_,
        command_id,
        actor,
        fmt,
        plan_id=plan_id,
        pricing=pricing_from(model, price, tiers, current["currency"]),
        apply_to=apply_to,
    )


@plan.command("retire")
@click.argument("plan_id")
@command_options
@format_option
@click.pass_context
def plan_retire(ctx, plan_id, at_, command_id, actor, fmt):
    """Retire a plan: it takes no new subscribers."""
    issue(ctx, c.RetirePlan, at_, command_id, actor, fmt, plan_id=plan_id)


@plan.command("list")
@format_option
@click.pass_obj
def plan_list(app: App, fmt: str) -> None:
    """The catalog."""
    from projections import reports

    rows = reports.plans(app.runtime.db)
    if fmt != "json":
        for row in rows:
            p = row.pop("pricing")
            row["price"] = (
                format_amount(p["amount"], row["currency"])
                if not p["tiers"]
                else f"{len(p['tiers'])} tiers"
            )
            row["model"] = p["model"]
            row["features"] = ",".join(row["features"])
    show(rows, fmt)


# ---- customers, coupons, tax -----------------------------------------------------------


@cli.group()
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
    prefs = dict(p.split("=", 1) for p in preferences if "=" in p)
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
@command_options
@format_option
@click.pass_context
def customer_update(
    ctx, customer_id, name, email, country, payment_token, at_, command_id, actor, fmt
):
    """Change a customer's contact details or payment token."""
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
    )


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
@format_option
@click.pass_obj
def customer_show(app: App, customer_id: str, fmt: str) -> None:
    """A customer's profile (decrypted), subscriptions and balance."""
    from projections import reports

    profile = app.runtime.ledger.customer_profile(customer_id)
    profile["balance"] = reports.balance(app.runtime.db, customer_id)
    profile["subscriptions"] = [
        s["subscription_id"] for s in reports.subscriptions(app.runtime.db, customer=customer_id)
    ]
    show(profile, fmt)


@cli.group()
def coupon() -> None:
    """Define coupons."""


@coupon.command("define")
@click.argument("code")
@click.option("--percent", help="Percent off, e.g. 20 or 12.5.")
@click.option("--amount", help="Amount off per invoice, e.g. 5.00 (needs --currency).")
@click.option("--currency")
@click.option(
    "--duration",
    type=click.Choice(["once", "repeating", "forever"]),
    default="once",
    show_default=True,
)
@click.option("--periods", type=int, help="With --duration repeating: how many invoices.")
@command_options
@format_option
@click.pass_context
def coupon_define(
    ctx, code, percent, amount, currency, duration, periods, at_, command_id, actor, fmt
):
    """Define a coupon."""
    if (percent is None) == (amount is None):
        raise InvalidInput("give exactly one of --percent and --amount")
    bp = parse_percent_ppm(percent) // 100 if percent is not None else None
    amount_off = parse_amount(amount, (currency or "").upper()) if amount else None
    issue(
        ctx,
        c.DefineCoupon,
        at_,
        command_id,
        actor,
        fmt,
        code=code,
        percent_off_bp=bp,
        amount_off=amount_off,
        currency=currency.upper() if currency else None,
        duration=duration,
        periods=periods,
    )


@cli.group()
def tax() -> None:
    """Tax rates by country."""


@tax.command("set-rate")
@click.argument("country")
@click.argument("percent")
@command_options
@format_option
@click.pass_context
def tax_set_rate(ctx, country, percent, at_, command_id, actor, fmt):
    """Set COUNTRY's tax rate to PERCENT (e.g. GB 20, US-NY style codes are not supported)."""
    issue(
        ctx,
        c.SetTaxRate,
        at_,
        command_id,
        actor,
        fmt,
        country=country.upper(),
        rate_ppm=parse_percent_ppm(percent),
    )


# ---- subscriptions ---------------------------------------------------------------------


@cli.command()
@click.argument("customer_id")
@click.argument("plan_id")
@click.option("--subscription-id", help="Default: a new id.")
@click.option("--quantity", type=int, default=1, show_default=True)
@click.option("--coupon")
@click.option(
    "--anchor-day",
    type=int,
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


@cli.command("change-plan")
@click.argument("subscription_id")
@click.argument("plan_id")
@click.option("--quantity", type=int)
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


@cli.command()
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


def _simple(name: str, cls: type[c.Command], doc: str) -> None:
    @cli.command(name, help=doc)
    @click.argument("subscription_id")
    @command_options
    @format_option
    @click.pass_context
    def verb(ctx, subscription_id, at_, command_id, actor, fmt):
        issue(ctx, cls, at_, command_id, actor, fmt, subscription_id=subscription_id)


_simple("pause", c.Pause, "Pause billing; MRR stops until resumed.")
_simple("resume", c.Resume, "Resume a paused subscription (a new period if the paid one ended).")
_simple(
    "reactivate",
    c.Reactivate,
    "Withdraw a scheduled cancellation, or restart a churned subscription.",
)


@cli.command("record-payment")
@click.argument("subscription_id")
@click.argument("invoice_number")
@click.option("--amount", required=True, help="The amount due, e.g. 12.00.")
@click.option("--currency", required=True)
@click.option("--reference", required=True, help="Bank or payments-team reference.")
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
        reference=reference,
    )


@cli.group()
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
    issue(ctx, c.AdvanceClock, to, command_id, actor, fmt)


@clock.command("show")
@format_option
@click.pass_obj
def clock_show(app: App, fmt: str) -> None:
    """How far the clock has been advanced."""
    show({"clock": app.runtime.ledger.clock_now()}, fmt)


@cli.group()
def subscription() -> None:
    """Read subscriptions."""


@subscription.command("show")
@click.argument("subscription_id")
@format_option
@click.pass_obj
def subscription_show(app: App, subscription_id: str, fmt: str) -> None:
    """Status, plan, quantity, current period, open invoices."""
    from projections import reports

    row = reports.subscription(app.runtime.db, subscription_id)
    if row is None:
        raise InvalidInput(f"unknown subscription '{subscription_id}'")
    show(row, fmt)


@subscription.command("list")
@click.option("--customer")
@click.option(
    "--status", type=click.Choice(["trialing", "active", "past_due", "paused", "canceled"])
)
@click.option("--renewing-before", help="Upcoming renewals up to this time.")
@format_option
@click.pass_obj
def subscription_list(app: App, customer, status, renewing_before, fmt) -> None:
    """Subscriptions, soonest renewal first."""
    from projections import reports

    show(reports.subscriptions(app.runtime.db, customer, status, parse_time(renewing_before)), fmt)


@cli.group()
def invoices() -> None:
    """Read invoices."""


@invoices.command("list")
@click.option("--customer")
@click.option("--subscription")
@click.option("--status", type=click.Choice(["open", "paid", "uncollectible"]))
@format_option
@click.pass_obj
def invoices_list(app: App, customer, subscription, status, fmt) -> None:
    """Invoices with their lines (JSON shows the lines)."""
    from projections import reports

    show(reports.invoices(app.runtime.db, customer, subscription, status), fmt)


@cli.group()
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

    show(reports.payments(app.runtime.db, customer, subscription, outcome), fmt)


@cli.command()
@click.argument("subscription_id")
@format_option
@click.pass_obj
def history(app: App, subscription_id: str, fmt: str) -> None:
    """Every event of a subscription, in order, with who asked and when (from the store)."""
    from domain.identity import subscription_uuid
    from schemas.records import to_record

    events = app.runtime.ledger.history(subscription_uuid(subscription_id))
    if not events:
        raise InvalidInput(f"unknown subscription '{subscription_id}'")
    rows = []
    for event in events:
        rec = to_record(event)
        rows.append(
            {
                "version": rec.version,
                "event": rec.type,
                "at": rec.at,
                "status": rec.data.get("status"),
                "mrr": rec.data.get("mrr"),
                "actor": rec.meta.get("actor"),
                "command": rec.meta.get("command"),
                "command_id": rec.meta.get("command_id"),
                "source": rec.meta.get("source"),
                **({"data": rec.data} if fmt == "json" else {}),
            }
        )
    show(rows, fmt)


# ---- reports ---------------------------------------------------------------------------


@cli.group()
def report() -> None:
    """Analysts' reports: MRR, movements, churn, cohorts, revenue (keyed by currency)."""


def _window(start: str, end: str) -> tuple[datetime, datetime]:
    a, b = parse_time(start), parse_time(end)
    assert a and b
    if b <= a:
        raise InvalidInput("--to must be after --from")
    return a, b


@report.command("mrr")
@click.option("--at", "at_", help="As of this time (default: now, everything recorded).")
@format_option
@click.pass_obj
def report_mrr(app: App, at_, fmt) -> None:
    """MRR, ARR, paying customers, ARPU and active subscriptions."""
    from projections import reports

    show(reports.mrr(app.runtime.db, parse_time(at_)), fmt, key="currency")


@report.command("movements")
@click.option("--from", "start", required=True)
@click.option("--to", "end", required=True)
@format_option
@click.pass_obj
def report_movements(app: App, start, end, fmt) -> None:
    """MRR movements: new, expansion, contraction, churn, reactivation."""
    from projections import reports

    show(reports.movements(app.runtime.db, *_window(start, end)), fmt, key="currency")


@report.command("churn")
@click.option("--from", "start", required=True)
@click.option("--to", "end", required=True)
@format_option
@click.pass_obj
def report_churn(app: App, start, end, fmt) -> None:
    """Logo churn, revenue churn and net revenue churn rates, trial conversion."""
    from projections import reports

    show(reports.churn(app.runtime.db, *_window(start, end)), fmt, key="currency")


@report.command("cohorts")
@format_option
@click.pass_obj
def report_cohorts(app: App, fmt) -> None:
    """Logo retention by the month customers first paid."""
    from projections import reports

    rows = reports.cohorts(app.runtime.db)
    if fmt != "json":
        rows = [
            {
                "cohort": r["cohort"],
                "customers": r["customers"],
                **{f"m{i}": f"{v:.0%}" for i, v in enumerate(r["retention"])},
            }
            for r in rows
        ]
    show(rows, fmt)


@report.command("revenue")
@click.option("--from", "start", required=True)
@click.option("--to", "end", required=True)
@format_option
@click.pass_obj
def report_revenue(app: App, start, end, fmt) -> None:
    """Revenue billed, tax, collected and written off, by month."""
    from projections import reports

    revenue = reports.revenue(app.runtime.db, *_window(start, end))
    if fmt == "json":
        show(revenue, fmt)
        return
    rows = []  # one row a month, then the window's totals
    for currency, figures in revenue.items():
        rows += [
            {"currency": currency, "month": month, **m} for month, m in figures["months"].items()
        ]
        totals = {k: v for k, v in figures.items() if k != "months"}
        rows.append({"currency": currency, "month": "total", **totals})
    show(rows, fmt)


# ---- simulation and demo -----------------------------------------------------------------


def run_simulation(
    app: App, customers: int, months: int, seed: int, quiet: bool = False
) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from domain.simulation import Simulation

    sim = Simulation(customers=customers, months=months, seed=seed)
    ledger = app.runtime.ledger
    counts = {"commands": 0, "rejected": 0}
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("days"),
        TimeElapsedColumn(),
        disable=quiet,
        transient=False,
    ) as progress:
        task = progress.add_task("simulating", total=sim.days)
        for result in ledger.execute_batch(sim.setup()):
            counts["commands"] += 1
            if not result.ok:
                counts["rejected"] += 1
        for index in range(sim.days):
            day, day_commands = sim.day(index)
            batch = [
                c.AdvanceClock(
                    command_id=f"sim-{seed}-clock-{index}",
                    at=day,
                    actor="simulator",
                    source="simulator",
                ),
                *day_commands,
            ]
            for result in ledger.execute_batch(batch):
                counts["commands"] += 1
                counts["rejected"] += 0 if result.ok else 1
            app.runtime.catch_up()
            progress.update(task, advance=1)
        end = c.AdvanceClock(
            command_id=f"sim-{seed}-clock-end", at=sim.end, actor="simulator", source="simulator"
        )
        ledger.execute_batch([end])
        app.runtime.catch_up()
    counts["events"] = ledger.recorder.max_notification_id() or 0
    counts["start"], counts["end"] = sim.start, sim.end
    return counts


@cli.command()
@click.option("--customers", type=int, default=1000, show_default=True)
@click.option("--months", type=int, default=12, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@format_option
@click.pass_obj
def simulate(app: App, customers: int, months: int, seed: int, fmt: str) -> None:
    """Make a realistic book through the real commands (into an empty data dir)."""
    import time as wall

    if app.runtime.ledger.recorder.max_notification_id():
        raise InvalidInput("simulate needs an empty ledger: use a fresh --data-dir")
    began = wall.monotonic()
    counts = run_simulation(app, customers, months, seed, quiet=fmt == "json")
    counts["seconds"] = round(wall.monotonic() - began, 1)
    show(counts, fmt)


@cli.command()
@click.option("--customers", type=int, default=200, show_default=True)
@click.option("--months", type=int, default=12, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.pass_obj
def demo(app: App, customers: int, months: int, seed: int) -> None:
    """A small simulated year, then the book: MRR by month, movements, churn, invoices."""
    if not app.runtime.ledger.recorder.max_notification_id():
        click.echo(
            f"Simulating {customers} customers over {months} months (seed {seed}) "
            f"into {app.config.data_dir}/ ..."
        )
        counts = run_simulation(app, customers, months, seed)
        click.echo(
            f"{counts['commands']} commands ({counts['rejected']} refused by the rules), "
            f"{counts['events']} events recorded.\n"
        )
    end = app.runtime.ledger.clock_now() or datetime.now(UTC).replace(microsecond=0)
    summary(app.runtime.db, end)


def _month_starts(end: datetime, count: int) -> list[datetime]:
    """The first instants of the `count` months up to `end`'s month, and the one after."""
    year, month = end.year, end.month
    out = []
    for _ in range(count + 1):
        out.append(datetime(year, month, 1, tzinfo=UTC))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return sorted(out)


def _next_month(start: datetime) -> datetime:
    return (start + timedelta(days=32)).replace(day=1)


def summary(db: Any, end: datetime) -> None:
    """The book as an operator reads it: month by month, then churn, revenue, invoices."""
    from rich.console import Console
    from rich.table import Table

    from projections import reports

    console = Console(width=130)
    months = _month_starts(end - timedelta(seconds=1), 12)[1:]
    months.append(_next_month(months[-1]))
    first, last = months[0], months[-1]
    now = reports.mrr(db, end)
    console.print(f"[bold]The book as of {end:%Y-%m-%d %H:%M} UTC[/bold]")
    for currency, m in now.items():
        console.print(
            f"  {currency}: MRR {currency} {format_amount(m['mrr'], currency)} · ARR "
            f"{currency} {format_amount(m['arr'], currency)} · {m['paying_customers']} paying "
            f"customers · ARPU {currency} {format_amount(m['arpu'], currency)} · "
            f"{m['active_subscriptions']} active subscriptions"
        )
    for currency in now:
        table = Table(title=f"MRR movements by month ({currency})")
        for column in (
            "month",
            "new",
            "expansion",
            "contraction",
            "churn",
            "reactivation",
            "net",
            "MRR at month end",
            "logo churn",
        ):
            table.add_column(column, justify="right")
        for a, b in itertools.pairwise(months):
            mv = reports.movements(db, a, b).get(currency, {})
            ch = reports.churn(db, a, b).get(currency, {})
            at_end = reports.mrr(db, b - timedelta(seconds=1)).get(currency, {}).get("mrr", 0)
            rate = ch.get("logo_churn_rate")
            table.add_row(
                f"{a:%Y-%m}",
                *[
                    format_amount(mv.get(k, 0), currency)
                    for k in ("new", "expansion", "contraction", "churn", "reactivation", "net")
                ],
                format_amount(at_end, currency),
                "-" if rate is None else f"{rate:.1%}",
            )
        console.print(table)
    quarter = months[-4]
    for currency, ch in reports.churn(db, quarter, last).items():
        if ch.get("logo_churn_rate") is None:
            continue
        console.print(
            f"Last 3 months ({currency}): logo churn {ch['logo_churn_rate']:.1%}, revenue "
            f"churn {ch['revenue_churn_rate']:.1%}, net revenue churn "
            f"{ch['net_revenue_churn_rate']:.1%}"
            + (
                f", trial conversion {ch['trial_conversion_rate']:.0%}"
                if ch.get("trial_conversion_rate") is not None
                else ""
            )
        )
    for currency, rv in reports.revenue(db, first, last).items():
        console.print(
            f"Revenue ({currency}): billed {format_amount(rv['billed'], currency)} (tax "
            f"{format_amount(rv['tax'], currency)}), collected "
            f"{format_amount(rv['collected'], currency)}, written off "
            f"{format_amount(rv['written_off'], currency)}, outstanding "
            f"{format_amount(rv['outstanding'], currency)}"
        )
    rows = reports.invoices(db)
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    console.print(
        f"Invoices: {len(rows)} ({', '.join(f'{v} {k}' for k, v in statuses.items())}); the latest:"
    )
    for row in rows[-3:]:
        lines = ", ".join(
            f"{ln['kind']} {format_amount(ln['amount'], row['currency'])}" for ln in row["lines"]
        )
        console.print(
            f"  {row['number']} {row['issued_at']} {row['subscription_id']} "
            f"{row['currency']} {format_amount(row['total'], row['currency'])} "
            f"{row['status']}: {lines}"
        )


# ---- projections -------------------------------------------------------------------------


@cli.group()
def projections() -> None:
    """Read models: status, rebuild."""


@projections.command("status")
@format_option
@click.pass_obj
def projections_status(app: App, fmt: str) -> None:
    """Each projection's position and lag behind the event store's head."""
    if app.config.kafka_bootstrap and not app.config.embedded:
        from consumers.projector import status

        runtime = app.runtime
        state = status(app.config, runtime.ledger, runtime.projections, runtime.db)
        click.echo(f"event store head {state['head']}, relayed up to {state['relay']}")
        show(state["partitions"], fmt)
        return
    feeder = app.runtime.feeder
    head = feeder.head()
    show(
        [
            {"projection": name, "position": pos, "head": head, "lag": head - pos}
            for name, pos in feeder.positions().items()
        ],
        fmt,
    )


@projections.command("wait")
@click.option("--timeout", type=float, default=60.0, show_default=True)
@click.pass_obj
def projections_wait(app: App, timeout: float) -> None:
    """Return once every projection has caught up with the event store's head."""
    if not (app.config.kafka_bootstrap and not app.config.embedded):
        app.runtime.catch_up()
        return
    from consumers.projector import wait_caught_up

    runtime = app.runtime
    if not wait_caught_up(app.config, runtime.ledger, runtime.projections, runtime.db, timeout):
        raise Failure(f"projections not caught up within {timeout:g}s")


@cli.command()
@click.option(
    "--clock",
    "clock_",
    type=click.Choice(["wall", "manual"]),
    default="wall",
    show_default=True,
    help="wall: due work runs by wall time (an AdvanceClock every --tick seconds); manual: "
    "only when a `clock advance --to T` command arrives.",
)
@click.option(
    "--workers",
    default="commands,relay,projections,scheduler",
    show_default=True,
    help="Comma-separated: commands, relay, projections, scheduler.",
)
@click.option(
    "--tick",
    type=float,
    default=60.0,
    show_default=True,
    help="With --clock wall: seconds between clock ticks.",
)
@click.pass_obj
def serve(app: App, clock_: str, workers: str, tick: float) -> None:
    """Run the Kafka pipeline's workers until SIGTERM/SIGINT."""
    import logging

    from consumers.serve import serve as run

    logging.basicConfig(
        level=os.environ.get("SUBLEDGER_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(threadName)s %(levelname)s %(message)s",
    )
    names = [w.strip() for w in workers.split(",") if w.strip()]
    try:
        code = run(app.config, names, clock=clock_, tick_s=tick)
    except (ValueError, RuntimeError) as exc:
        raise Failure(str(exc)) from None
    if code:
        raise Failure("a worker failed (see the log)")


@projections.command("rebuild")
@click.argument("name")
@format_option
@click.pass_obj
def projections_rebuild(app: App, name: str, fmt: str) -> None:
    """Drop a read model and rebuild it from the event store.

    With Kafka, stop that projection's workers first; they resume after the rebuild.
    """
    runtime = app.runtime
    found = [p for p in runtime.projections if p.name == name]
    if not found:
        raise InvalidInput(
            f"unknown projection '{name}' (known: {', '.join(p.name for p in runtime.projections)})"
        )
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn(f"[bold]rebuilding {name}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("events"), disable=fmt != "table", transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task(name, total=runtime.feeder.head())

        def progress(position: int, head: int) -> None:
            bar.update(task, completed=position, total=head)

        if runtime.kafka_mode:  # rows from the store, then the Kafka group resumes at the end
            from consumers.projector import rebuild_from_store

            applied = rebuild_from_store(
                app.config, runtime.ledger, found[0], runtime.db, progress=progress
            )
        else:
            applied = runtime.feeder.rebuild(found[0], progress)
    show({"projection": name, "events_applied": applied}, fmt)


# ---- entry point -------------------------------------------------------------------------


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(1)
    except click.UsageError as e:  # one line too, with where to look
        where = e.ctx.command_path if e.ctx else "subledger"
        message = " ".join(e.format_message().split())
        click.echo(f"error: {message} (see '{where} --help')", err=True)
        sys.exit(e.exit_code)
    except click.ClickException as e:
        click.echo(f"error: {' '.join(e.format_message().split())}", err=True)
        sys.exit(e.exit_code)
    except LedgerError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    except Exception as e:  # one line for the user; the traceback on request
        if os.environ.get("SUBLEDGER_DEBUG"):
            raise
        click.echo(f"error: {type(e).__name__}: {e}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
