"""Analysts' reports: MRR, movements, churn, cohorts, revenue."""

from __future__ import annotations

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


@report.command("mrr")
@click.option("--at", "at_", help="As of this time (default: now, everything recorded).")
@format_option
@click.pass_obj
def report_mrr(app: App, at_, fmt) -> None:
    """MRR, ARR, paying customers, ARPU and active subscriptions."""
    from projections import reports

    figures = reports.mrr(app.runtime.db, parse_time(at_, "--at"))
    show(figures, fmt, key="currency", columns=reads.MRR_COLUMNS)


@report.command("movements")
@click.option("--from", "start", required=True)
@click.option("--to", "end", required=True)
@format_option
@click.pass_obj
def report_movements(app: App, start, end, fmt) -> None:
    """MRR movements: new, expansion, contraction, churn, reactivation."""
    from projections import reports

    moved = reports.movements(app.runtime.db, *_window(start, end))
    show(moved, fmt, key="currency", columns=reads.MOVEMENT_COLUMNS)


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
