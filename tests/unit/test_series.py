"""Monthly series: each point is the report for that month, to the cent; months telescope."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ledger_support import Book, T, flat

from domain import commands as c
from projections import reports, series


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Book]:
    """Jan: two customers sign up (USD 10, EUR 20); Feb 15: USD upgrades to 30; Mar 20: the
    USD one cancels now (churn)."""
    b = Book.embedded(tmp_path_factory.mktemp("series") / "book")
    b.plan("basic", T(2025, 1, 1), flat(1000))
    b.plan("pro", T(2025, 1, 1), flat(3000))
    b.plan("euro", T(2025, 1, 1), flat(2000), currency="EUR")
    b.customer("ann", T(2025, 1, 1))
    b.customer("eve", T(2025, 1, 1), country="DE")
    b.subscribe("s-ann", "ann", "basic", T(2025, 1, 5))
    b.subscribe("s-eve", "eve", "euro", T(2025, 1, 10))
    b.advance(T(2025, 2, 15))
    b.run(c.ChangePlan, T(2025, 2, 15), subscription_id="s-ann", plan_id="pro")
    b.advance(T(2025, 3, 20))
    b.run(c.Cancel, T(2025, 3, 20), subscription_id="s-ann", immediately=True)
    try:
        yield b
    finally:
        b.close()


def test_buckets_cut_the_window_to_utc_calendar_months() -> None:
    assert series.buckets(T(2025, 1, 15), T(2025, 3, 2)) == [
        ("2025-01", T(2025, 1, 15), T(2025, 2, 1)),
        ("2025-02", T(2025, 2, 1), T(2025, 3, 1)),
        ("2025-03", T(2025, 3, 1), T(2025, 3, 2)),
    ]
    assert series.buckets(T(2024, 12, 1), T(2025, 1, 1)) == [
        ("2024-12", T(2024, 12, 1), T(2025, 1, 1))
    ]


def test_mrr_at_each_month_end_is_the_report_just_before_it(book: Book) -> None:
    points = series.mrr_by_month(book.db, T(2025, 1, 1), T(2025, 4, 1))
    usd = [(p["month"], p["mrr"], p["arr"], p["paying_customers"]) for p in points["USD"]]
    assert usd == [
        ("2025-01", 1000, 12000, 1),
        ("2025-02", 3000, 36000, 1),
        ("2025-03", 0, 0, 0),
    ]
    assert [p["mrr"] for p in points["EUR"]] == [2000, 2000, 2000]
    months = series.buckets(T(2025, 1, 1), T(2025, 4, 1))
    for point, (_, _, end) in zip(points["USD"], months, strict=True):
        assert point["mrr"] == reports.mrr(book.db, end - series.SECOND)["USD"]["mrr"]


def test_monthly_movements_and_churn_add_up_to_the_window(book: Book) -> None:
    start, end = T(2025, 1, 1), T(2025, 4, 1)
    months = series.movements_by_month(book.db, start, end)["USD"]
    assert [(m["month"], m["new"], m["expansion"], m["churn"]) for m in months] == [
        ("2025-01", 1000, 0, 0),
        ("2025-02", 0, 2000, 0),
        ("2025-03", 0, 0, -3000),
    ]
    whole = reports.movements(book.db, start, end)["USD"]
    assert sum(m["net"] for m in months) == whole["net"] == 0
    churn = series.churn_by_month(book.db, start, end)["USD"]
    assert [c["month"] for c in churn] == ["2025-01", "2025-02", "2025-03"]
    assert churn[2]["logo_churn_rate"] == 1.0 and churn[2]["churned_mrr"] == 3000


def test_revenue_by_month_has_every_month_and_the_span_and_currencies(book: Book) -> None:
    months = series.revenue_by_month(book.db, T(2025, 1, 1), T(2025, 4, 1))
    assert [m["month"] for m in months["EUR"]] == ["2025-01", "2025-02", "2025-03"]
    total = reports.revenue(book.db, T(2025, 1, 1), T(2025, 4, 1))["USD"]["billed"]
    assert sum(m["billed"] for m in months["USD"]) == total > 0
    first, last = series.span(book.db) or (None, None)
    assert first == T(2025, 1, 5) and last is not None and last >= T(2025, 3, 20)
    assert series.currencies(book.db) == ["USD", "EUR"]
