"""Analysts' reports: MRR, movements, churn, cohorts, revenue, deferred revenue, renewals."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta

import click

from domain.errors import InvalidInput
from verbs import reads
from verbs.app import App, parse_time
from verbs.options import format_option
from verbs.render import show


@click.group()
def report() -> None:
    """Analysts' reports: MRR, movements, churn, cohorts, revenue (keyed by currency)."""


_SPAN = re.compile(r"([0-9]{1,5})([hdw])")
_SPAN_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def parse_span(text: str, option: str = "--within") -> timedelta:
    """`30d`, `12h`, `2w`: a span of hours, days or weeks."""
    from domain.limits import quote

    match = _SPAN.fullmatch(text.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise InvalidInput(
            f"{option}: {quote(text)} is not a span like 30d, 12h or 2w (hours, days, weeks)"
        )
    return timedelta(**{_SPAN_UNITS[match.group(2)]: int(match.group(1))})


def _window(start: str, end: str) -> tuple[datetime, datetime]:
    a, b = parse_time(start, "--from"), parse_time(end, "--to")
    assert a and b
    if b <= a:
        raise InvalidInput("--to must be after --from")
    return a, b


def _chart_option(what: str) -> Callable:
    return click.option(
        "--chart", is_flag=True, help=f"Draw {what} as a bar chart in the terminal (tables only)."
    )


def _for_people(fmt: str) -> None:
    if fmt != "table":
        raise InvalidInput("--chart draws for people; leave out --format json/csv")


@report.command("mrr")
@click.option("--at", "at_", help="As of this time (default: now, everything recorded).")
@_chart_option("MRR at each month's end")
@click.option(
    "--months",
    type=click.IntRange(1, 120),
    default=12,
    show_default=True,
    help="With --chart: how many months, up to --at (or the book's last figure).",
)
@format_option
@click.pass_obj
def report_mrr(app: App, at_, chart, months, fmt) -> None:
    """MRR, ARR, paying customers, ARPU and active subscriptions."""
    from projections import reports

    at = parse_time(at_, "--at")
    if chart:
        _for_people(fmt)
        _mrr_chart(app, at, months)
        return
    figures = reports.mrr(app.runtime.db, at)
    show(figures, fmt, key="currency", columns=reads.MRR_COLUMNS)


def _mrr_chart(app: App, at: datetime | None, months: int) -> None:
    from rich.console import Console

    from domain.recognition import month_start
    from projections import series
    from verbs import charts

    db = app.runtime.db
    known = series.span(db)
    if at is None:
        at = known[1] + series.SECOND if known else app.now()
    first = month_start(at)
    for _ in range(months - 1):
        first = month_start(first - series.SECOND)
    if known and known[0] < at:  # no empty months before the book's first figure
        first = max(first, month_start(known[0]))
    points = series.mrr_by_month(db, first, at)
    if not points:
        raise InvalidInput(f"no MRR recorded up to {at:%Y-%m-%dT%H:%M:%SZ}")
    charts.render(
        Console(),
        [charts.mrr_chart(c, [(p["month"], p["mrr"]) for p in rows]) for c, rows in points.items()],
    )


@report.command("movements")
@click.option("--from", "start", required=True)
@click.option("--to", "end", required=True)
@_chart_option("each month's movements")
@format_option
@click.pass_obj
def report_movements(app: App, start, end, chart, fmt) -> None:
    """MRR movements: new, expansion, contraction, churn, reactivation."""
    from projections import reports

    if chart:
        _for_people(fmt)
        _movements_chart(app, *_window(start, end))
        return
    moved = reports.movements(app.runtime.db, *_window(start, end))
    show(moved, fmt, key="currency", columns=reads.MOVEMENT_COLUMNS)


def _movements_chart(app: App, start: datetime, end: datetime) -> None:
    from rich.console import Console

    from projections import series
    from verbs import charts

    by_month = series.movements_by_month(app.runtime.db, start, end)
    if not by_month:
        raise InvalidInput(f"no MRR movements in [{start:%Y-%m-%d}, {end:%Y-%m-%d})")
    charts.render(
        Console(),
        [
            charts.movements_chart(c, [(m["month"], m) for m in rows])
            for c, rows in by_month.items()
        ],
    )


@report.command("churn")
@click.option("--from", "start", required=True)
@click.option("--to", "end", required=True)
@format_option
@click.pass_obj
def report_churn(app: App, start, end, fmt) -> None:
    """Logo churn, revenue churn and net revenue churn rates, trial conversion, ARPU, LTV.

    \b
    arpu: `report mrr --at TO`'s ARPU (MRR / paying customers).
    ltv:  arpu / monthly revenue churn rate, in minor units (round half up), where the
          monthly rate = revenue_churn_rate x 30.436875 days / the window's length in days
          (a linear normalisation); empty (null) when that rate is 0 or unknown.
    """
    from projections import reports

    churn = reports.churn(app.runtime.db, *_window(start, end))
    show(churn, fmt, key="currency", columns=reads.CHURN_COLUMNS)


@report.command("cohorts")
@click.option(
    "--by",
    type=click.Choice(["customers", "revenue"]),
    default="customers",
    show_default=True,
    help="customers: share still paying (logos); revenue: net revenue retention per currency.",
)
@format_option
@click.pass_obj
def report_cohorts(app: App, by, fmt) -> None:
    """Retention by the month customers first paid, at each month end (m0 = that month's).

    By revenue: per cohort and currency, its MRR at the end of its first month (`mrr`) and
    its members' MRR at each month end over it (net revenue retention; may exceed 1).
    """
    from projections import finance, reports

    if by == "revenue":
        rows = reads.cohort_rows(finance.cohorts_by_revenue(app.runtime.db), fmt)
        show(rows, fmt, columns=reads.REVENUE_COHORT_COLUMNS)
        return
    rows = reads.cohort_rows(reports.cohorts(app.runtime.db), fmt)
    show(rows, fmt, columns=reads.COHORT_COLUMNS)


@report.command("revenue")
@click.option("--from", "start", required=True)
@click.option("--to", "end", required=True)
@format_option
@click.pass_obj
def report_revenue(app: App, start, end, fmt) -> None:
    """Revenue billed, tax, collected, recognised and written off, by month.

    \b
    recognised:      invoice lines net of tax, less credit notes, earned ratably over their
                     service period by the second (README: "Finance figures").
    deferred_at_end: billed (net) by --to and not yet recognised at --to.
    written_off:     bad debt (invoices marked uncollectible): it does not un-recognise.
    """
    from projections import reports

    revenue = reports.revenue(app.runtime.db, *_window(start, end))
    if fmt == "json":
        show(revenue, fmt)
        return
    show(reads.revenue_rows(revenue), fmt, columns=reads.REVENUE_COLUMNS)


@report.command("deferred")
@click.option("--at", "at_", help="As of this instant (default: now, the ledger's clock).")
@click.option("--invoices", is_flag=True, help="List the invoices with revenue still deferred.")
@format_option
@click.pass_obj
def report_deferred(app: App, at_, invoices, fmt) -> None:
    """Deferred revenue: billed net of tax and credit notes, recognised, and the rest."""
    from projections import finance

    at = parse_time(at_, "--at") or app.now()
    if invoices:
        rows = finance.deferred_invoices(app.runtime.db, at)
        show(rows, fmt, columns=reads.DEFERRED_INVOICE_COLUMNS)
        return
    figures = finance.deferred(app.runtime.db, at)
    show(figures, fmt, key="currency", columns=reads.DEFERRED_COLUMNS)


@report.command("renewals")
@click.option("--within", default="30d", show_default=True, help="A span: Nh, Nd or Nw.")
@click.option("--at", "at_", help="From this instant (default: now, the ledger's clock).")
@format_option
@click.pass_obj
def report_renewals(app: App, within, at_, fmt) -> None:
    """Paying subscriptions, not cancelling, whose period ends in [at, at + within].

    amount: the next recurring invoice before tax: the price it renews at (its own price
    version, or the one a price change moves it to) for the quantity, less its coupon.
    JSON: {"renewals": [...], "totals": {currency: {"renewals", "amount"}}}; the table ends
    with a total per currency; CSV is one row a renewal.
    """
    from projections import finance

    span = parse_span(within)
    at = parse_time(at_, "--at") or app.now()
    rows = finance.renewals(
        app.runtime.db, at, span, price=finance.ledger_pricer(app.runtime.ledger)
    )
    totals = finance.renewal_totals(rows)
    if fmt == "json":
        show({"renewals": rows, "totals": totals}, fmt)
        return
    if fmt == "table":  # CSV stays one row a renewal
        rows += [{"subscription_id": "total", "currency": k, **v} for k, v in totals.items()]
    show(rows, fmt, columns=reads.RENEWAL_COLUMNS)


COMMANDS: list[click.Command] = [report]
