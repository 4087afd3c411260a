"""The catalog: plans and their prices, coupons, tax rates."""

from __future__ import annotations

import click

from domain import commands as c
from domain.errors import InvalidInput
from domain.limits import MAX_AMOUNT
from domain.money import format_amount, parse_amount, parse_percent_ppm
from domain.pricing import Pricing, parse_tier
from verbs import reads
from verbs.app import App
from verbs.command import issue
from verbs.options import command_options, format_option
from verbs.render import show


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


@click.group()
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
    from domain.catalog.plan import Plan
    from domain.identity import plan_uuid

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

    rows = reads.plan_rows(reports.plans(app.runtime.db), fmt)
    show(rows, fmt, columns=reads.PLAN_COLUMNS)


@click.group()
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
        # ppm to basis points exactly: a percent never meets a rounding rule, it is refused
        bp, finer = divmod(parse_percent_ppm(percent), 100)
        if finer:
            raise InvalidInput("--percent takes at most two decimals (e.g. 12.5 or 33.33)")
        if bp == 0:
            raise InvalidInput("--percent must be more than 0")
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


@click.group()
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


COMMANDS: list[click.Command] = [plan, coupon, tax]
