"""`subledger`: the command line. Thin: parse, build a command, call the ledger, print."""

from __future__ import annotations

import itertools
import os
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, NoReturn

import click

from domain import commands as c
from domain.errors import InvalidInput, LedgerError
from domain.limits import MAX_AMOUNT
from domain.money import format_amount, parse_amount, parse_percent_ppm
from domain.pricing import Pricing, parse_tier
from schemas import topics
from verbs import render
from verbs.render import format_option, show, show_outcome


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
        self.warn_stuck = True  # `projections status/rebuild` say it their own way

    @property
    def runtime(self) -> Any:
        if self._runtime is None:
            from bootstrap import Runtime

            self._runtime = Runtime(self.config)
            if self.config.embedded:  # whatever a crash left behind, reads see it all
                self._runtime.catch_up()
                self._warn_if_stuck()
        return self._runtime

    def now(self) -> datetime:
        """Default effective time: the wall clock, or the ledger's clock if it is ahead."""
        now = datetime.now(UTC).replace(microsecond=0)
        clock = self.runtime.ledger.clock_now()
        return max(now, clock) if clock else now

    def run(self, command: c.Command) -> dict[str, Any]:
        outcome = self.runtime.ledger.execute(command)
        self.settle()
        return outcome

    def settle(self) -> None:
        """After a recorded command: bring the read models up; nothing here may fail it."""
        try:
            self.runtime.catch_up()
        except Exception as exc:  # busy or gone: the next command or read catches up
            from domain.pci import mask_card_numbers

            why = mask_card_numbers(" ".join(str(exc).split()))
            click.echo(
                "warning: recorded, but the read models are not up to date yet"
                f" ({why}); the next command or read brings them up",
                err=True,
            )
            return
        self._warn_if_stuck()

    def _warn_if_stuck(self) -> None:
        """One `warning:` line per run while a read model is stuck on an event."""
        if not self.warn_stuck or self._runtime is None or self._runtime.kafka_mode:
            return
        faults = self._runtime.feeder.faults()
        if not faults:
            return
        from consumers.embedded import describe

        self.warn_stuck = False
        names = sorted(faults)
        rebuild = (
            f"'subledger projections rebuild {names[0]}'"
            if len(names) == 1
            else f"'subledger projections rebuild NAME' for {', '.join(names)}"
        )
        click.echo(
            f"warning: read model {'; '.join(describe(faults[n]) for n in names)}"
            f"; its reports stop there: fix the cause, then run {rebuild}",
            err=True,
        )

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()


def parse_time(
    text: str | None, option: str = "a time", *, bounded: bool = False
) -> datetime | None:
    """ISO 8601 date or date-time; without an offset it is UTC. An effective time (`bounded`)
    is between 1970 and 2199; a read's window may be any date."""
    from domain.limits import check_time, quote

    if text is None:
        return None
    try:
        if len(text) == 10:
            parsed = datetime.combine(date.fromisoformat(text), time(0), tzinfo=UTC)
        else:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidInput(
            f"{option}: {quote(text)} is not an ISO 8601 date or time"
            " (2025-01-31 or 2025-01-31T12:00:00Z)"
        ) from None
    return check_time(parsed, option) if bounded else parsed


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
    if ctx.meta.get("subledger.publish"):
        return publish(
            app,
            command,
            fmt,
            wait=bool(ctx.meta.get("subledger.wait")),
            timeout=float(ctx.meta.get("subledger.timeout") or 30.0),
        )
    outcome = app.run(command)
    show_outcome(outcome, fmt)  # recorded: rendering can no longer make it a failure
    return outcome


def with_customer_key(app: App, command: c.Command) -> c.Command:
    """Name the subscription's customer, so the command shares that customer's partition."""
    import dataclasses

    from projections import reports

    sub_id = getattr(command, "subscription_id", None)
    if sub_id is None or getattr(command, "customer_id", "") is not None:
        return command
    row = reports.subscription(app.runtime.db, sub_id)
    if row is None:
        return command
    keyed = dataclasses.replace(command, customer_id=row["customer_id"])
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
            click.echo(render.escape(command.command_id))
            return {"command_id": command.command_id}
        outcome = publisher.wait(app.runtime.ledger, command.command_id, timeout)
    finally:
        publisher.close()
    result = {"command_id": command.command_id, "outcome": outcome.status, **outcome.detail}
    show_outcome(result, fmt)
    if outcome.status == "rejected":
        raise Failure(f"rejected: {outcome.detail.get(topics.H_REASON, '')}")
    if outcome.status == "timeout":
        raise Failure(f"no outcome for {command.command_id} within {timeout:g}s")
    return result


# ---- output: verbs/render.py (show, format_option, the columns of each read) ----------


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

    Ids (customer, plan, subscription, coupon, command ids, actors) are 1-200 characters,
    not blank, without control characters. A command dated before the ledger clock takes
    effect at the clock (the output says so); card numbers are refused in every field.
    """
    ctx.obj = App(data_dir)
    ctx.call_on_close(ctx.obj.close)


# ---- plans -----------------------------------------------------------------------------


def pricing_from(model: str, price: str | None, tiers: tuple[str, ...], currency: str) -> dict:
    """The pricing the options describe; an option that would be ignored is an error."""
    from domain.money import exponent

    exponent(currency)
    if model in ("tiered", "volume"):
        if price is not None:
            raise InvalidInput(f"a {model} plan takes --tier, not --price")
        if not tiers:
            raise InvalidInput(
                f"a {model} plan needs --tier UP_TO:PRICE (e.g. --tier 10:5.00 --tier inf:4.00)"
            )
        return Pricing(model, 0, tuple(parse_tier(t, currency) for t in tiers)).to_dict()
    if tiers:
        raise InvalidInput(f"a {model} plan takes --price, not --tier (tiers need tiered/volume)")
    if price is None:
        raise InvalidInput("--price is required")
    amount = parse_amount(price, currency)
    if amount > MAX_AMOUNT:
        raise InvalidInput(
            f"--price must be at most {format_amount(MAX_AMOUNT, currency)} {currency}"
        )
    return Pricing(model, amount).to_dict()


@cli.group()
def plan() -> None:
    """Define, list and reprice plans."""


@plan.command("define")
@click.argument("plan_id")
@click.option("--name", required=True)
@click.option(
    "--price",
    help="Price per unit and period (per_unit) or per period (flat), e.g. 10.00; at most"
    " 10,000,000,000 minor units.",
)
@click.option("--currency", required=True, help="ISO 4217 code, e.g. USD.")
@click.option(
    "--interval",
    type=click.Choice(["day", "week", "month", "year"]),
    default="month",
    show_default=True,
)
@click.option(
    "--interval-count",
    type=click.IntRange(1, 3660),
    default=1,
    show_default=True,
    help="Intervals per billing period (at most ten years).",
)
@click.option("--trial-days", type=click.IntRange(0, 730), default=0, show_default=True)
@click.option("--feature", "features", multiple=True, help="Repeatable.")
@click.option(
    "--pricing",
    "model",
    type=click.Choice(["flat", "per_unit", "tiered", "volume"]),
    default="per_unit",
    show_default=True,
    help="per_unit bills price x quantity (as Stripe prices do); flat bills the price for a"
    " quantity of exactly 1; tiered/volume take --tier.",
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
    from domain.identity import plan_uuid
    from domain.plan import Plan

    app: App = ctx.obj
    current = app.runtime.ledger.get(Plan, plan_uuid(plan_id))  # the store, not a read model
    if current is None:
        raise InvalidInput(f"unknown plan '{plan_id}'")
    model = model or current.pricing.model
    issue(
        ctx,
        c.ChangePlanPrice,
        at_,
        command_id,
        actor,
        fmt,
        plan_id=plan_id,
        pricing=pricing_from(model, price, tiers, current.currency),
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

    rows = render.plan_rows(reports.plans(app.runtime.db), fmt)
    show(rows, fmt, columns=render.PLAN_COLUMNS)


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
    bad = [p for p in preferences if "=" not in p]
    if bad:
        raise InvalidInput("--preference takes KEY=VALUE (e.g. --preference notify.email=off)")
    prefs = dict(p.split("=", 1) for p in preferences)
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
@click.option(
    "--periods",
    type=click.IntRange(1, 120),
    help="With --duration repeating: how many invoices (1-120).",
)
@command_options
@format_option
@click.pass_context
def coupon_define(
    ctx, code, percent, amount, currency, duration, periods, at_, command_id, actor, fmt
):
    """Define a coupon."""
    if (percent is None) == (amount is None):
        raise InvalidInput("give exactly one of --percent and --amount")
    bp = None
    if percent is not None:
        ppm = parse_percent_ppm(percent)
        if ppm % 100:  # the one rounding rule never meets a percent: it is exact or refused
            raise InvalidInput("--percent takes at most two decimals (e.g. 12.5 or 33.33)")
        if ppm == 0:
            raise InvalidInput("--percent must be more than 0")
        bp = ppm // 100
    if amount is not None and not currency:
        raise InvalidInput("--amount needs --currency")
    if percent is not None and currency:
        raise InvalidInput("--currency goes with --amount; a --percent coupon has none")
    amount_off = parse_amount(amount, currency.upper()) if amount is not None else None
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


@cli.command("change-plan")
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
    issue(ctx, c.AdvanceClock, to, command_id, actor, fmt, at_option="--to")


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

    rows = reports.subscriptions(
        app.runtime.db, customer, status, parse_time(renewing_before, "--renewing-before")
    )
    show(rows, fmt, columns=render.SUBSCRIPTION_COLUMNS)


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

    rows = reports.invoices(app.runtime.db, customer, subscription, status)
    show(rows, fmt, columns=render.INVOICE_COLUMNS)


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

    rows = reports.payments(app.runtime.db, customer, subscription, outcome)
    show(rows, fmt, columns=render.PAYMENT_COLUMNS)


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
    currency = None  # the subscription's, carried to the events that do not repeat it
    for event in events:
        rec = to_record(event)
        currency = rec.data.get("currency") or currency
        rows.append(
            {
                "version": rec.version,
                "event": rec.type,
                "at": rec.at,
                "status": rec.data.get("status"),
                "currency": currency,
                "mrr": rec.data.get("mrr"),
                "actor": rec.meta.get("actor"),
                "command": rec.meta.get("command"),
                "command_id": rec.meta.get("command_id"),
                "source": rec.meta.get("source"),
                **({"data": rec.data} if fmt == "json" else {}),
            }
        )
    show(rows, fmt, columns=render.HISTORY_COLUMNS)


# ---- reports ---------------------------------------------------------------------------


@cli.group()
def report() -> None:
    """Analysts' reports: MRR, movements, churn, cohorts, revenue (keyed by currency)."""


def _window(start: str, end: str) -> tuple[datetime, datetime]:
    a, b = parse_time(start, "--from"), parse_time(end, "--to")
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

    figures = reports.mrr(app.runtime.db, parse_time(at_, "--at"))
    show(figures, fmt, key="currency", columns=render.MRR_COLUMNS)


@report.command("movements")
@click.option("--from", "start", required=True)
@click.option("--to", "end", required=True)
@format_option
@click.pass_obj
def report_movements(app: App, start, end, fmt) -> None:
    """MRR movements: new, expansion, contraction, churn, reactivation."""
    from projections import reports

    moved = reports.movements(app.runtime.db, *_window(start, end))
    show(moved, fmt, key="currency", columns=render.MOVEMENT_COLUMNS)


@report.command("churn")
@click.option("--from", "start", required=True)
@click.option("--to", "end", required=True)
@format_option
@click.pass_obj
def report_churn(app: App, start, end, fmt) -> None:
    """Logo churn, revenue churn and net revenue churn rates, trial conversion."""
    from projections import reports

    churn = reports.churn(app.runtime.db, *_window(start, end))
    show(churn, fmt, key="currency", columns=render.CHURN_COLUMNS)


@report.command("cohorts")
@format_option
@click.pass_obj
def report_cohorts(app: App, fmt) -> None:
    """Logo retention by the month customers first paid."""
    from projections import reports

    rows = render.cohort_rows(reports.cohorts(app.runtime.db), fmt)
    show(rows, fmt, columns=render.COHORT_COLUMNS)


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
    show(render.revenue_rows(revenue), fmt, columns=render.REVENUE_COLUMNS)


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
            app.settle()
            progress.update(task, advance=1)
        end = c.AdvanceClock(
            command_id=f"sim-{seed}-clock-end", at=sim.end, actor="simulator", source="simulator"
        )
        ledger.execute_batch([end])
        app.settle()
    counts["events"] = ledger.recorder.max_notification_id() or 0
    counts["start"], counts["end"] = sim.start, sim.end
    return counts


@cli.command()
@click.option("--customers", type=click.IntRange(0, 1_000_000), default=1000, show_default=True)
@click.option("--months", type=click.IntRange(1, 120), default=12, show_default=True)
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=1, show_default=True)
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
@click.option("--customers", type=click.IntRange(0, 1_000_000), default=200, show_default=True)
@click.option("--months", type=click.IntRange(1, 120), default=12, show_default=True)
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=7, show_default=True)
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
    from rich.text import Text

    from projections import reports

    console = Console(width=130)

    def say(line: str, style: str = "") -> None:  # ids are user text: never markup
        console.print(Text(render.escape(line), style=style))

    months = _month_starts(end - timedelta(seconds=1), 12)[1:]
    months.append(_next_month(months[-1]))
    first, last = months[0], months[-1]
    now = reports.mrr(db, end)
    say(f"The book as of {end:%Y-%m-%d %H:%M} UTC", style="bold")
    for currency, m in now.items():
        say(
            f"  {currency}: MRR {currency} {format_amount(m['mrr'], currency)} · ARR "
            f"{currency} {format_amount(m['arr'], currency)} · {m['paying_customers']} paying "
            f"customers · ARPU {currency} {format_amount(m['arpu'], currency)} · "
            f"{m['active_subscriptions']} active subscriptions"
        )
    for currency in now:
        table = Table(title=Text(render.escape(f"MRR movements by month ({currency})")))
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
            cells = [
                f"{a:%Y-%m}",
                *[
                    format_amount(mv.get(k, 0), currency)
                    for k in ("new", "expansion", "contraction", "churn", "reactivation", "net")
                ],
                format_amount(at_end, currency),
                "-" if rate is None else f"{rate:.1%}",
            ]
            table.add_row(*[Text(cell) for cell in cells])
        console.print(table)
    quarter = months[-4]
    for currency, ch in reports.churn(db, quarter, last).items():
        if ch.get("logo_churn_rate") is None:
            continue
        say(
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
        say(
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
    say(
        f"Invoices: {len(rows)} ({', '.join(f'{v} {k}' for k, v in statuses.items())}); the latest:"
    )
    for row in rows[-3:]:
        lines = ", ".join(
            f"{ln['kind']} {format_amount(ln['amount'], row['currency'])}" for ln in row["lines"]
        )
        say(
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
    """Each projection's position and lag behind the event store's head, and where it is
    stuck if an event made it fail (`stuck`: empty, or position, event and reason)."""
    from consumers.embedded import stuck_at
    from projections.base import get_faults

    app.warn_stuck = False  # the `stuck` column says it

    def stuck(fault: dict[str, Any] | None) -> Any:
        if fmt == "json":
            keys = ("position", "event", "reason", "recorded_at")
            return {k: fault[k] for k in keys} if fault else None
        return stuck_at(fault) if fault else ""

    if app.config.kafka_bootstrap and not app.config.embedded:
        from consumers.projector import status

        runtime = app.runtime
        state = status(app.config, runtime.ledger, runtime.projections, runtime.db)
        faults = {(f["projection"], f["source"]): f for f in get_faults(runtime.db)}
        topic = app.config.events_topic
        for row in state["partitions"]:
            name = row["projection"]
            fault = faults.get((name, f"{topic}:{row['partition']}")) or faults.get((name, "log"))
            row["stuck"] = stuck(fault)
        click.echo(f"event store head {state['head']}, relayed up to {state['relay']}")
        show(state["partitions"], fmt)
        return
    feeder = app.runtime.feeder
    head = feeder.head()
    faults = feeder.faults()
    show(
        [
            {
                "projection": name,
                "position": pos,
                "head": head,
                "lag": head - pos,
                "stuck": stuck(faults.get(name)),
            }
            for name, pos in feeder.positions().items()
        ],
        fmt,
    )


@projections.command("wait")
@click.option(
    "--timeout", type=click.FloatRange(0, 86_400, min_open=True), default=60.0, show_default=True
)
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
    type=click.FloatRange(0.1, 86_400),
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
    from consumers.embedded import ProjectionStuck, stuck_at
    from projections.base import get_faults

    app.warn_stuck = False  # the rebuild clears the fault, or says where it stopped again
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
            faults = get_faults(runtime.db, name)
        else:
            try:
                applied = runtime.feeder.rebuild(found[0], progress)
                faults = []
            except ProjectionStuck as stopped:
                faults = [stopped.fault]
    if faults:  # the fault is recorded, the read model stays at the event before it
        raise Failure(
            f"rebuilding {name} stopped: {stuck_at(faults[0])}; the read model stays"
            " there (see 'subledger projections status'); this is a bug to report"
        )
    show({"projection": name, "events_applied": applied}, fmt)


# ---- entry point -------------------------------------------------------------------------


def _config_for(args: list[str]) -> Any:
    """The settings a failed run used (--data-dir or the environment), to name them."""
    from bootstrap import Config

    try:
        with cli.make_context("subledger", list(args), resilient_parsing=True) as ctx:
            data_dir = ctx.params.get("data_dir")
    except Exception:
        data_dir = os.environ.get("SUBLEDGER_DATA_DIR")
    try:
        return Config.from_env(data_dir=Path(data_dir) if data_dir else None)
    except Exception:
        return None


def _fail(message: str, status: int) -> NoReturn:
    click.echo(render.error_line(message), err=True)
    sys.exit(status)


def main() -> None:
    """Every failure is one line in the user's words (SUBLEDGER_DEBUG=1: the traceback)."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        _fail("aborted", 1)
    except click.UsageError as e:  # one line too, with where to look
        where = e.ctx.command_path if e.ctx else "subledger"
        _fail(f"{e.format_message()} (see '{where} --help')", e.exit_code)
    except click.ClickException as e:
        _fail(e.format_message(), e.exit_code)
    except LedgerError as e:
        _fail(str(e), 1)
    except Exception as e:
        if os.environ.get("SUBLEDGER_DEBUG"):
            raise
        _fail(*render.explain(e, _config_for(sys.argv[1:])))


if __name__ == "__main__":
    main()
