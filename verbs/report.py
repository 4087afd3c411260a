"""Analysts' reports: MRR, movements, churn, cohorts, revenue."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import click

from domain.errors import InvalidInput
from verbs import reads
from verbs.app import App, parse_time
from verbs.options import format_option
from verbs.render import show


@click.group()
def report() -> None:
    """Analysts' reports: MRR, movements, churn, cohorts, revenue (keyed by currency)."""


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

    from projections import series
    from verbs import charts

    db = app.runtime.db
    known = series.span(db)
    if at is None:
        at = known[1] + series.SECOND if known else app.now()
    first = series.month_start(at)
    for _ in range(months - 1):
        first = series.month_start(first - series.SECOND)
    if known and known[0] < at:  # no empty months before the book's first figure
        first = max(first, series.month_start(known[0]))
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
    """Logo churn, revenue churn and net revenue churn rates, trial conversion."""
    from projections import reports

    churn = reports.churn(app.runtime.db, *_window(start, end))
    show(churn, fmt, key="currency", columns=reads.CHURN_COLUMNS)


@report.command("cohorts")
@format_option
@click.pass_obj
def report_cohorts(app: App, fmt) -> None:
    """Logo retention by the month customers first paid."""
    from projections import reports

    rows = reads.cohort_rows(reports.cohorts(app.runtime.db), fmt)
    show(rows, fmt, columns=reads.COHORT_COLUMNS)


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
    show(reads.revenue_rows(revenue), fmt, columns=reads.REVENUE_COLUMNS)


COMMANDS: list[click.Command] = [report]
