"""Monthly series over the read models, for charts (the dashboard, `report mrr --chart`).

Pure reads built on `projections.reports`, so a series point is the report a person would
run for that month: MRR at a month's end is `reports.mrr(db, end - 1 s)`, a month's
movements are `reports.movements(db, first, next first)`. Months are UTC calendar months;
a window [start, end) cuts its first and last month to fit (`buckets`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from domain.recognition import months
from projections import reports
from projections.base import parse_ts, ts
from projections.db import ReadDB

SECOND = timedelta(seconds=1)
# (`YYYY-MM`, first, end) of each UTC month overlapping [start, end), cut to the window
buckets = months


def span(db: ReadDB) -> tuple[datetime, datetime] | None:
    """The first and last instants the book has figures for (movements, invoices, payments);
    None for an empty book."""
    rows = db.query(
        "SELECT MIN(first) AS first, MAX(last) AS last FROM ("
        " SELECT MIN(at) AS first, MAX(at) AS last FROM mrr_movements"
        " UNION ALL SELECT MIN(issued_at), MAX(issued_at) FROM invoices"
        " UNION ALL SELECT MIN(at), MAX(at) FROM payments) AS spans"
    )
    if not rows or rows[0]["first"] is None:
        return None
    return parse_ts(rows[0]["first"]), parse_ts(rows[0]["last"])


def currencies(db: ReadDB) -> list[str]:
    """Every currency the book has subscriptions or invoices in, the busiest first."""
    rows = db.query(
        "SELECT currency, SUM(n) AS n FROM ("
        " SELECT currency, COUNT(*) AS n FROM subscriptions GROUP BY currency"
        " UNION ALL SELECT currency, COUNT(*) AS n FROM invoices GROUP BY currency) AS used"
        " GROUP BY currency"
    )
    return [r["currency"] for r in sorted(rows, key=lambda r: (-int(r["n"]), r["currency"]))]


def mrr_by_month(db: ReadDB, start: datetime, end: datetime) -> dict[str, list[dict[str, Any]]]:
    """Per currency, each month's closing figures (`reports.mrr` just before the month's
    end, or the window's): mrr, arr, paying_customers, arpu, active_subscriptions."""
    points = [(month, reports.mrr(db, until - SECOND)) for month, _, until in buckets(start, end)]
    names = sorted({c for _, figures in points for c in figures})
    empty = {"mrr": 0, "arr": 0, "paying_customers": 0, "arpu": 0, "active_subscriptions": 0}
    return {
        currency: [
            {"month": month, **empty, **figures.get(currency, {})} for month, figures in points
        ]
        for currency in names
    }


def movements_by_month(
    db: ReadDB, start: datetime, end: datetime
) -> dict[str, list[dict[str, Any]]]:
    """Per currency, each month's `reports.movements` (new ... reactivation, net, customers)."""
    points = [(month, reports.movements(db, a, b)) for month, a, b in buckets(start, end)]
    names = sorted({c for _, moved in points for c in moved})
    empty = {k: 0 for k in (*reports.KINDS, "net")}
    empty |= {f"{k}_customers": 0 for k in reports.KINDS}
    return {
        currency: [{"month": month, **empty, **moved.get(currency, {})} for month, moved in points]
        for currency in names
    }


def churn_by_month(db: ReadDB, start: datetime, end: datetime) -> dict[str, list[dict[str, Any]]]:
    """Per currency, each month's `reports.churn` (rates None when nobody paid at its start)."""
    points = [(month, reports.churn(db, a, b)) for month, a, b in buckets(start, end)]
    names = sorted({c for _, figures in points for c in figures})
    return {
        currency: [{"month": month, **figures.get(currency, {})} for month, figures in points]
        for currency in names
    }


def revenue_by_month(db: ReadDB, start: datetime, end: datetime) -> dict[str, list[dict[str, Any]]]:
    """Per currency, each month's billed, tax and collected (`reports.revenue`'s months), with
    every month of the window present."""
    revenue = reports.revenue(db, start, end)
    return {
        currency: [
            {"month": month, "billed": 0, "tax": 0, "collected": 0}
            | figures["months"].get(month, {})
            for month, _, _ in buckets(start, end)
        ]
        for currency, figures in sorted(revenue.items())
    }


def window_text(start: datetime, end: datetime) -> str:
    """`[from, to)` as read-model times, for titles and CSV names."""
    return f"[{ts(start)}, {ts(end)})"
