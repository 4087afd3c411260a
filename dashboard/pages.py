"""What each dashboard page shows: its figures as rows (the CSV behind each chart, integer
minor units) and the chart drawn from them, for one currency and one date range.

Every figure is read through `projections.reports`, `projections.series` or
`projections.finance`, so it is what `subledger report ...` prints for the same window.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from dashboard import charts
from domain.errors import InvalidInput
from domain.subscription.status import Status
from projections import finance, reports, series
from projections.db import ReadDB
from projections.statuses import OPEN

DAY = timedelta(days=1)
SECOND = series.SECOND
RENEWALS_DAYS = 30  # the renewals page's default window, from the book's clock
MAX_DAYS = 3660  # a range of ten years at most: every month is a few reads
_CURRENCY = re.compile(r"[A-Z]{3}")

PAGES: dict[str, str] = {  # name -> title, in the menu's order
    "mrr": "MRR and movements",
    "churn": "Churn",
    "cohorts": "Cohorts",
    "revenue": "Revenue",
    "renewals": "Renewals and dunning",
}


class Book:
    """The read models the pages read, the book's clock (where the ledger stands), how to
    price a renewal, and a lock: one connection serves every request, one read at a time."""

    def __init__(
        self,
        db: ReadDB,
        clock: Callable[[], datetime],
        price: Callable[[dict[str, Any]], int | None] | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.price = price  # a renewal's amount as the ledger will bill it (finance.renewals)
        self.lock = threading.Lock()


@dataclass(frozen=True)
class Query:
    """A page's parameters: one currency and the days [start, end) (`to` is inclusive)."""

    currency: str
    start: datetime
    end: datetime
    currencies: tuple[str, ...] = ()

    @property
    def from_text(self) -> str:
        return f"{self.start:%Y-%m-%d}"

    @property
    def to_text(self) -> str:
        return f"{self.end - DAY:%Y-%m-%d}"

    def params(self, **overrides: str) -> dict[str, str]:
        return {"currency": self.currency, "from": self.from_text, "to": self.to_text} | overrides


@dataclass
class Figure:
    """One chart and the rows behind it (its CSV); `table` shows the rows on the page too."""

    id: str
    title: str
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    chart: Any = None  # a plotly Figure; None when there is nothing to draw
    table: bool = False
    note: str = ""


@dataclass
class Page:
    name: str
    title: str
    query: Query
    headline: dict[str, Any]
    cards: list[tuple[str, str]] = field(default_factory=list)  # (label, text)
    figures: list[Figure] = field(default_factory=list)


def _day(text: str, name: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError(text)
        day = date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{name}: {text[:40]!r} is not a date (YYYY-MM-DD)") from None
    if not 1970 <= day.year <= 2199:
        raise InvalidInput(f"{name}: {text} is not between 1970 and 2199")
    return day


def _instant(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def read_query(book: Book, page: str, params: Mapping[str, str]) -> Query:
    """The page's query from its URL parameters; defaults: the book's busiest currency, and
    every month with figures (renewals: the next 30 days from the book's clock)."""
    known = series.currencies(book.db)
    currency = params.get("currency") or (known[0] if known else "USD")
    if not _CURRENCY.fullmatch(currency):
        raise InvalidInput(f"currency: {currency[:40]!r} is not a currency code (USD)")
    if known and currency not in known:
        raise InvalidInput(f"currency: the book has no {currency} (it has {', '.join(known)})")
    if page == "renewals":
        today = book.clock().date()
        first, last = today, today + timedelta(days=RENEWALS_DAYS)
    else:
        span = series.span(book.db)
        moment = (span[0], span[1]) if span else (book.clock(), book.clock())
        first, last = moment[0].date().replace(day=1), moment[1].date()
    if params.get("from"):
        first = _day(params["from"], "from")
    if params.get("to"):
        last = _day(params["to"], "to")
    if last < first:
        raise InvalidInput("to must not be before from")
    if (last - first).days > MAX_DAYS:
        raise InvalidInput("the range is ten years at most")
    return Query(currency, _instant(first), _instant(last) + DAY, tuple(known))


def build(book: Book, name: str, query: Query) -> Page:
    """The page `name` for `query` (its headline: MRR at the end of the range)."""
    headline = reports.mrr(book.db, query.end - SECOND).get(query.currency) or {
        "mrr": 0,
        "arr": 0,
        "paying_customers": 0,
        "arpu": 0,
        "active_subscriptions": 0,
    }
    page = Page(name, PAGES[name], query, headline)
    BUILDERS[name](book, query, page)
    return page


# ---- the pages ------------------------------------------------------------------------------


def _mrr_page(book: Book, q: Query, page: Page) -> None:
    db = book.db
    points = series.mrr_by_month(db, q.start, q.end).get(q.currency, [])
    moved = series.movements_by_month(db, q.start, q.end).get(q.currency, [])
    opening = reports.mrr(db, q.start - SECOND).get(q.currency, {}).get("mrr", 0)
    page.figures.append(
        Figure(
            "mrr",
            "MRR and ARR at each month's end",
            ("month", "mrr", "arr", "paying_customers", "arpu", "active_subscriptions"),
            points,
            charts.mrr_arr(points, q.currency),
        )
    )
    steps = [{"step": "opening", "month": q.from_text[:7], "amount": opening}]
    steps += [{"step": "net", "month": m["month"], "amount": m["net"]} for m in moved]
    closing = opening + sum(m["net"] for m in moved)
    steps.append({"step": "closing", "month": q.to_text[:7], "amount": closing})
    page.figures.append(
        Figure(
            "waterfall",
            "MRR waterfall: opening, each month's net movement, closing",
            ("step", "month", "amount"),
            steps,
            charts.waterfall(steps, q.currency) if points else None,
        )
    )
    kinds = (*reports.KINDS, "net")
    page.figures.append(
        Figure(
            "movements",
            "MRR movements by month",
            ("month", *kinds, *(f"{k}_customers" for k in reports.KINDS)),
            moved,
            charts.movements(moved, q.currency) if moved else None,
        )
    )


def _churn_page(book: Book, q: Query, page: Page) -> None:
    db = book.db
    months = series.churn_by_month(db, q.start, q.end).get(q.currency, [])
    whole = reports.churn(db, q.start, q.end).get(q.currency, {})
    for label, key in (
        ("Logo churn", "logo_churn_rate"),
        ("Revenue churn", "revenue_churn_rate"),
        ("Net revenue churn", "net_revenue_churn_rate"),
    ):
        page.cards.append((f"{label} over the range", charts.percent(whole.get(key))))
    page.cards.append(("ARPU at the end", charts.money(whole.get("arpu"), q.currency)))
    page.cards.append(
        ("LTV (ARPU / monthly revenue churn)", charts.money(whole.get("ltv"), q.currency))
    )
    columns = (
        "month",
        "customers_at_start",
        "customers_churned",
        "logo_churn_rate",
        "mrr_at_start",
        "churned_mrr",
        "contraction_mrr",
        "expansion_mrr",
        "reactivation_mrr",
        "revenue_churn_rate",
        "net_revenue_churn_rate",
        "arpu",
        "ltv",
    )
    page.figures.append(
        Figure(
            "churn_rates",
            "Logo, revenue and net revenue churn by month",
            columns,
            months,
            charts.churn_rates(months) if months else None,
        )
    )
    page.figures.append(
        Figure(
            "churned_mrr",
            "MRR lost and won back by month",
            columns,
            months,
            charts.churned_mrr(months, q.currency) if months else None,
        )
    )


def _cohorts_page(book: Book, q: Query, page: Page) -> None:
    db = book.db
    first = q.from_text[:7]
    logos = [r for r in reports.cohorts(db, q.end - SECOND) if r["cohort"] >= first]
    revenue = [
        r
        for r in finance.cohorts_by_revenue(db, q.end - SECOND)
        if r["currency"] == q.currency and r["cohort"] >= first
    ]
    page.figures.append(
        Figure(
            "cohorts_customers",
            "Logo retention by first-paid month (every currency)",
            ("cohort", "customers", "month", "retention"),
            _cells(logos),
            charts.heatmap(logos, "share of the cohort's customers still paying")
            if logos
            else None,
            note="A customer counts once, whatever the currency.",
        )
    )
    page.figures.append(
        Figure(
            "cohorts_revenue",
            f"Net revenue retention by first-paid month ({q.currency})",
            ("cohort", "customers", "mrr", "month", "retention"),
            _cells(revenue),
            charts.heatmap(revenue, "cohort MRR / its first month's") if revenue else None,
        )
    )


def _cells(cohorts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A cohort table as CSV rows: one per cohort and month since it first paid."""
    return [
        {k: v for k, v in row.items() if k not in ("retention", "currency")}
        | {"month": n, "retention": value}
        for row in cohorts
        for n, value in enumerate(row["retention"])
    ]


def _revenue_page(book: Book, q: Query, page: Page) -> None:
    db = book.db
    billed = {
        m["month"]: m for m in series.revenue_by_month(db, q.start, q.end).get(q.currency, [])
    }
    recognised = finance.recognition(db, q.start, q.end).get(q.currency, {})
    by_month = recognised.get("months", {})
    months = []
    for month, _, until in series.buckets(q.start, q.end):
        row = {"month": month, "billed": 0, "tax": 0, "collected": 0} | billed.get(month, {})
        row["recognised"] = by_month.get(month, {}).get("recognised", 0)
        row["deferred_at_end"] = finance.deferred(db, until).get(q.currency, {}).get("deferred", 0)
        months.append(row)
    anything = any(v for row in months for k, v in row.items() if k != "month")
    totals = reports.revenue(db, q.start, q.end).get(q.currency, {})
    for label, value in (
        ("Billed (with tax)", totals.get("billed", 0)),
        ("Collected", totals.get("collected", 0)),
        ("Recognised (net of tax)", recognised.get("recognised", 0)),
        ("Deferred at the end", recognised.get("deferred_at_end", 0)),
        ("Written off (bad debt)", totals.get("written_off", 0)),
        ("Outstanding now", totals.get("outstanding", 0)),
    ):
        page.cards.append((label, charts.money(value, q.currency)))
    page.figures.append(
        Figure(
            "revenue",
            "Billed vs collected vs recognised, and deferred at each month's end",
            ("month", "billed", "tax", "collected", "recognised", "deferred_at_end"),
            months,
            charts.revenue(months, q.currency) if anything else None,
            note="Billed and collected include tax; recognised and deferred exclude it "
            "and are net of credit notes.",
        )
    )


def _renewals_page(book: Book, q: Query, page: Page) -> None:
    db = book.db
    upcoming = [
        r
        for r in finance.renewals(db, q.start, q.end - q.start - SECOND, book.price)
        if r["currency"] == q.currency
    ]
    page.cards.append(("Renewals in the range", str(len(upcoming))))
    page.cards.append(
        ("Their amount (before tax)", charts.money(sum(r["amount"] for r in upcoming), q.currency))
    )
    page.figures.append(
        Figure(
            "renewals",
            "Upcoming renewals by day (before tax)",
            ("renews_at", "subscription_id", "customer_id", "plan_id", "quantity", "amount"),
            upcoming,
            charts.renewals(upcoming, q.currency) if upcoming else None,
            table=True,
        )
    )
    dunning = _dunning(db, q.currency)
    page.cards.append(("Customers in dunning now", str(len({r["customer_id"] for r in dunning}))))
    page.figures.append(
        Figure(
            "dunning",
            "Customers in dunning now: what their open invoices owe",
            (
                "customer_id",
                "subscription_id",
                "plan_id",
                "open_invoices",
                "outstanding",
                "attempts",
                "oldest_issued_at",
            ),
            dunning,
            charts.dunning(dunning, q.currency) if dunning else None,
            table=True,
            note="Subscriptions past due (a failed charge being retried); a snapshot, "
            "whatever the range.",
        )
    )


def _dunning(db: ReadDB, currency: str) -> list[dict[str, Any]]:
    """Past-due subscriptions in `currency`, with what their open invoices owe."""
    open_invoices = [i for i in reports.invoices(db, status=OPEN) if i["currency"] == currency]
    out = []
    for sub in reports.subscriptions(db, status=Status.PAST_DUE.value):
        if sub["currency"] != currency:
            continue
        mine = [i for i in open_invoices if i["subscription_id"] == sub["subscription_id"]]
        out.append(
            {
                "customer_id": sub["customer_id"],
                "subscription_id": sub["subscription_id"],
                "plan_id": sub["plan_id"],
                "open_invoices": len(mine),
                "outstanding": sum(int(i["amount_due"]) - int(i["amount_paid"]) for i in mine),
                "attempts": max((int(i["attempts"]) for i in mine), default=0),
                "oldest_issued_at": min((i["issued_at"] for i in mine), default=None),
            }
        )
    return sorted(out, key=lambda r: (-r["outstanding"], r["subscription_id"]))


BUILDERS: dict[str, Callable[[Book, Query, Page], None]] = {
    "mrr": _mrr_page,
    "churn": _churn_page,
    "cohorts": _cohorts_page,
    "revenue": _revenue_page,
    "renewals": _renewals_page,
}
