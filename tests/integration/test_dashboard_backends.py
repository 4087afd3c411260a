"""The dashboard's pages read the same figures from PostgreSQL read models (Kafka mode's) as
from the embedded SQLite ones: one small book on each, every page, every figure's rows."""

from __future__ import annotations

from pathlib import Path

from bootstrap import Config
from dashboard import pages, render
from domain import commands as c
from projections import reports
from tests.unit.ledger_support import Book, T, flat


def make_book(book: Book) -> Book:
    """USD and EUR customers; an upgrade, a cancellation, a declined card in dunning."""
    book.plan("basic", T(2025, 1, 1), flat(1000))
    book.plan("pro", T(2025, 1, 1), flat(3000))
    book.plan("euro", T(2025, 1, 1), flat(2000), currency="EUR")
    book.customer("ann", T(2025, 1, 1))
    book.customer("bob", T(2025, 1, 1))
    book.customer("eve", T(2025, 1, 1), country="DE")
    book.subscribe("s-ann", "ann", "basic", T(2025, 1, 5))
    book.subscribe("s-bob", "bob", "pro", T(2025, 1, 20))
    book.subscribe("s-eve", "eve", "euro", T(2025, 2, 10))
    book.advance(T(2025, 2, 15))
    book.run(c.ChangePlan, T(2025, 2, 15), subscription_id="s-ann", plan_id="pro")
    book.run(c.Cancel, T(2025, 2, 16), subscription_id="s-bob", immediately=True)
    book.customer("dee", T(2025, 3, 9), token="tok_chargeDeclined")
    book.subscribe("s-dee", "dee", "basic", T(2025, 3, 9))
    book.advance(T(2025, 3, 10))
    return book


def every_page(book: Book) -> dict[tuple[str, str], pages.Page]:
    shown = pages.Book(book.rt.db, lambda: book.ledger.clock_now() or T(2025, 3, 10))
    out = {}
    for currency in ("USD", "EUR"):
        for name in pages.PAGES:
            query = pages.read_query(shown, name, {"currency": currency})
            out[(name, currency)] = pages.build(shown, name, query)
    return out


def test_every_page_reads_the_same_figures_on_sqlite_and_postgresql(
    tmp_path: Path, pg_database_pair
) -> None:
    lite = make_book(Book.embedded(tmp_path / "lite"))
    pg = make_book(
        Book(
            Config(
                data_dir=tmp_path / "pg",
                event_store=pg_database_pair.event_store_url,
                read_db=pg_database_pair.read_db_url,
            )
        )
    )
    try:
        assert pg.rt.db.kind == "postgres"
        on_lite, on_pg = every_page(lite), every_page(pg)
        for key, page in on_pg.items():
            assert page.headline == on_lite[key].headline, key
            assert page.cards == on_lite[key].cards, key
            rows = {f.id: f.rows for f in page.figures}
            assert rows == {f.id: f.rows for f in on_lite[key].figures}, key
            charts = render.html(page).count('type="application/json"')
            assert charts == sum(f.chart is not None for f in page.figures), key
        assert all(f.chart is not None for f in on_pg[("mrr", "USD")].figures)
        usd = on_pg[("mrr", "USD")]
        assert usd.headline["mrr"] == reports.mrr(pg.db)["USD"]["mrr"] > 0
        (dunning,) = [f for f in on_pg[("renewals", "USD")].figures if f.id == "dunning"]
        assert [r["customer_id"] for r in dunning.rows] == ["dee"]
        assert dunning.rows[0]["outstanding"] > 0
    finally:
        lite.close()
        pg.close()


def test_an_empty_book_shows_every_page_with_nothing_to_draw(tmp_path: Path) -> None:
    empty = Book.embedded(tmp_path / "empty")
    try:
        for (name, _), page in every_page(empty).items():
            assert page.headline["mrr"] == 0, name
            assert all(f.chart is None for f in page.figures), name
            assert "Nothing to show" in render.html(page), name
    finally:
        empty.close()
