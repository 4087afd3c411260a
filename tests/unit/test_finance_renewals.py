"""Upcoming renewals priced as the ledger will bill them: the renewed price version and the
coupon (from the aggregates), against the read model's plain plan price."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from ledger_support import Book, T, flat

from domain import commands as c
from projections import finance


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Book]:
    book = Book.embedded(Path(tmp_path_factory.mktemp("renewals")) / "book")
    try:
        t = T(2026, 1, 1)
        book.plan("basic", t, flat(3000))
        book.plan("pro", t, flat(6000))
        book.run(c.DefineCoupon, t, code="SAVE20", percent_off_bp=2000, duration="forever")
        for customer in ("ada", "bob", "cid", "dot"):
            book.customer(customer, t)
        book.subscribe("s-ada", "ada", "basic", t, coupon="SAVE20")
        book.subscribe("s-bob", "bob", "basic", t)
        book.subscribe("s-cid", "cid", "pro", t)
        book.subscribe("s-dot", "dot", "pro", T(2026, 1, 5))
        # basic: new subscribers only (bob keeps 30.00); pro: everyone at their renewal
        book.run(c.ChangePlanPrice, T(2026, 1, 10), plan_id="basic", pricing=flat(4000))
        book.run(
            c.ChangePlanPrice, T(2026, 1, 10), plan_id="pro", pricing=flat(7000),
            apply_to="at_renewal",
        )  # fmt: skip
        book.run(c.Cancel, T(2026, 1, 12), subscription_id="s-dot")  # at period end
        yield book
    finally:
        book.close()


def test_renewals_are_priced_as_the_ledger_will_bill_them(shop: Book) -> None:
    rows = finance.renewals(
        shop.db, T(2026, 1, 20), timedelta(days=30), price=finance.ledger_pricer(shop.ledger)
    )
    assert [(r["subscription_id"], r["renews_at"], r["amount"]) for r in rows] == [
        ("s-ada", "2026-02-01T00:00:00Z", 2400),  # her own 30.00, less 20% forever
        ("s-bob", "2026-02-01T00:00:00Z", 3000),  # keeps his price: the change was for new
        ("s-cid", "2026-02-01T00:00:00Z", 7000),  # moved to 70.00 at his renewal
    ]  # s-dot cancels at period end: no renewal
    assert finance.renewal_totals(rows) == {"USD": {"renewals": 3, "amount": 12400}}


def test_the_ledger_bills_what_renewals_said_and_the_read_model_alone_lists_prices(
    shop: Book,
) -> None:
    said = finance.renewals(
        shop.db, T(2026, 1, 20), timedelta(days=30), price=finance.ledger_pricer(shop.ledger)
    )
    shop.advance(T(2026, 2, 1))
    billed = {i["subscription_id"]: i["subtotal"] for i in shop.invoices() if i["issued_at"]
              == "2026-02-01T00:00:00Z"}  # fmt: skip
    assert billed == {r["subscription_id"]: r["amount"] for r in said}

    # without the ledger, the read model knows only each plan's current list price
    rows = finance.renewals(shop.db, T(2026, 2, 20), timedelta(weeks=2))
    # list prices now: basic 40.00 (not ada's or bob's), pro 70.00
    assert {r["subscription_id"]: r["amount"] for r in rows} == {
        "s-ada": 4000,
        "s-bob": 4000,
        "s-cid": 7000,
    }
