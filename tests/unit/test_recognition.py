"""Revenue recognition by the second: the rule's properties (hypothesis), and a mid-period
upgrade worked by hand to the cent, from the lines the ledger itself issues."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_support import Book, T, flat

from domain import commands as c
from domain.recognition import (
    Item,
    billed_net,
    credit_period,
    cumulative,
    deferred,
    recognised,
    schedule,
)
from projections import finance

EPOCH = T(2025, 1, 1)
SPAN = 3 * 366 * 86_400  # three years of seconds around the epoch
instants = st.integers(min_value=0, max_value=SPAN).map(lambda s: EPOCH + timedelta(seconds=s))


@st.composite
def items(draw: st.DrawFn) -> Item:
    start = draw(instants)
    shape = draw(st.sampled_from(["period", "zero-length", "inverted"]))
    if shape == "period":
        end = start + timedelta(seconds=draw(st.integers(1, 400 * 86_400)))
    elif shape == "zero-length":
        end = start
    else:
        end = start - timedelta(seconds=draw(st.integers(1, 86_400)))
    # issued before, inside or after the period
    doc = start + timedelta(seconds=draw(st.integers(-60 * 86_400, 450 * 86_400)))
    return Item(draw(st.integers(-10_000_000, 10_000_000)), start, end, doc)


@settings(max_examples=300, deadline=None)
@given(st.lists(items(), min_size=1, max_size=8), instants)
def test_recognised_plus_deferred_is_billed_net_at_every_instant(
    book: list[Item], at: datetime
) -> None:
    assert recognised(book, at) + deferred(book, at) == billed_net(book, at)


@settings(max_examples=300, deadline=None)
@given(items())
def test_a_monthly_schedule_sums_to_the_item_exactly(item: Item) -> None:
    months = schedule(item)
    assert sum(amount for _, amount in months) == item.amount
    assert [m for m, _ in months] == sorted({m for m, _ in months})  # one row a month, in order


@settings(max_examples=300, deadline=None)
@given(items(), instants, instants)
def test_cumulative_is_monotone_bounded_and_mirrors_credits(
    item: Item, a: datetime, b: datetime
) -> None:
    early, late = sorted([a, b])
    positive = Item(abs(item.amount), item.start, item.end, item.doc_time)
    assert 0 <= positive.cumulative(early) <= positive.cumulative(late) <= positive.amount
    negative = Item(-positive.amount, item.start, item.end, item.doc_time)
    assert negative.cumulative(late) == -positive.cumulative(late)  # truncation toward zero


def test_the_rule_at_its_edges() -> None:
    jan, feb = T(2026, 1, 1), T(2026, 2, 1)  # 31 days
    assert cumulative(3100, jan, feb, jan, jan) == 0  # nothing at the period's first instant
    assert cumulative(3100, jan, feb, jan, T(2026, 1, 2)) == 100
    assert cumulative(-1000, jan, feb, jan, T(2026, 1, 2)) == -32  # -32.26: toward zero
    assert cumulative(3100, jan, feb, T(2026, 1, 11), T(2026, 1, 10)) == 0  # not issued yet
    assert cumulative(3100, jan, feb, T(2026, 1, 11), T(2026, 1, 11)) == 1000  # catch-up
    assert cumulative(3100, jan, jan, jan, jan) == 3100  # zero-length: at once
    # a credit note after its invoice's period is taken whole when issued
    assert credit_period(T(2026, 3, 1), jan, feb) == (T(2026, 3, 1), T(2026, 3, 1))
    assert credit_period(T(2026, 1, 11), jan, feb) == (T(2026, 1, 11), feb)
    assert schedule(Item(3000, T(2026, 1, 16), T(2026, 3, 16), T(2026, 1, 16))) == [
        ("2026-01", 813),  # 16 of 59 days: cum(Feb 1) = trunc(3000 x 16/59 = 813.56)
        ("2026-02", 1424),  # cum(Mar 1) = trunc(3000 x 44/59 = 2237.29) = 2237, - 813
        ("2026-03", 763),  # the rest: 3000 - 2237
    ]


# ---- a mid-period upgrade, from the ledger's own lines -----------------------------------


@pytest.fixture(scope="module")
def upgrade(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Book]:
    """$30.00 a month from 2026-01-01, upgraded to $60.00 on 2026-01-16, run to 2026-02-01."""
    book = Book.embedded(Path(tmp_path_factory.mktemp("upgrade")) / "book")
    try:
        t = T(2026, 1, 1)
        book.plan("basic", t, flat(3000))
        book.plan("pro", t, flat(6000))
        book.customer("ada", t)
        book.subscribe("s1", "ada", "basic", t)
        book.run(c.ChangePlan, T(2026, 1, 16), subscription_id="s1", plan_id="pro")
        book.advance(T(2026, 2, 1))
        yield book
    finally:
        book.close()


def test_the_ledger_prorates_the_upgrade_as_worked_by_hand(upgrade: Book) -> None:
    lines = [
        (i["number"], i["issued_at"][:10], ln["kind"], ln["amount"], ln["period_start"][:10])
        for i in upgrade.invoices()
        for ln in i["lines"]
    ]
    assert lines == [
        ("INV-000001", "2026-01-01", "recurring", 3000, "2026-01-01"),
        # 16 of January's 31 days left on the 16th: -3000 x 16/31 = -1548.39 -> -1548,
        # +6000 x 16/31 = 3096.77 -> 3097 (the ledger rounds each half up)
        ("INV-000002", "2026-01-16", "proration_credit", -1548, "2026-01-16"),
        ("INV-000002", "2026-01-16", "proration_charge", 3097, "2026-01-16"),
        ("INV-000003", "2026-02-01", "recurring", 6000, "2026-02-01"),
    ]


def test_the_upgrade_is_recognised_by_month_to_the_cent(upgrade: Book) -> None:
    figures = finance.recognition(upgrade.db, T(2026, 1, 1), T(2026, 3, 1))
    # January: 3000 (the whole period) - 1548 + 3097 (the rest of it) = 4549
    # February: the renewal's 6000, all of it by March 1st; nothing left deferred
    assert figures == {
        "USD": {
            "recognised": 4549 + 6000,
            "deferred_at_end": 0,
            "months": {"2026-01": {"recognised": 4549}, "2026-02": {"recognised": 6000}},
        }
    }
    half = finance.recognition(upgrade.db, T(2026, 1, 1), T(2026, 2, 15))
    # February 1st-15th: 6000 x 14/28 = 3000; 3000 of the renewal still deferred
    assert half["USD"]["months"]["2026-02"] == {"recognised": 3000}
    assert (half["USD"]["recognised"], half["USD"]["deferred_at_end"]) == (7549, 3000)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        # issued, nothing served yet
        (T(2026, 1, 1), {"billed_net": 3000, "recognised": 0, "deferred": 3000}),
        # 15 of 31 days: 3000 x 15/31 = 1451.61 -> 1451; the proration invoice just issued
        (T(2026, 1, 16), {"billed_net": 4549, "recognised": 1451, "deferred": 3098}),
        # 19/31 of 3000 = 1838.71 -> 1838; 4 of 16 days: -1548/4 = -387, 3097/4 = 774.25 -> 774
        (T(2026, 1, 20), {"billed_net": 4549, "recognised": 2225, "deferred": 2324}),
        # 23.5/31 of 3000 = 2274.19 -> 2274; 8.5/16: -822.375 -> -822 (toward zero, not
        # -823), 1645.28 -> 1645
        (T(2026, 1, 24, 12), {"billed_net": 4549, "recognised": 3097, "deferred": 1452}),
        # January all recognised; February's invoice issued at this instant, all deferred
        (T(2026, 2, 1), {"billed_net": 10549, "recognised": 4549, "deferred": 6000}),
    ],
)
def test_deferred_revenue_at_instants_to_the_cent(upgrade: Book, at, expected) -> None:
    assert finance.deferred(upgrade.db, at) == {"USD": expected}


def test_recognised_plus_deferred_is_billed_net_for_every_invoice(upgrade: Book) -> None:
    for at in (T(2026, 1, 9, 7, 5, 3), T(2026, 1, 27), T(2026, 2, 20)):
        for row in finance.deferred_invoices(upgrade.db, at):
            assert row["recognised"] + row["deferred"] == row["billed_net"]
    assert finance.deferred_invoices(upgrade.db, T(2026, 3, 1)) == []  # all recognised
