"""Read models fed from the real event store: MRR and its movements, churn, cohorts, revenue,
and rebuilds that give the live rows back."""

from __future__ import annotations

from pathlib import Path

import pytest
from ledger_support import Book, T, dump_tables, flat

from bootstrap import Config, Runtime
from domain import commands as c
from projections import reports


def projection_tables(runtime: Runtime) -> list[str]:
    return [table for p in runtime.projections for table in p.tables]


def mrr_of(book: Book, currency: str = "USD") -> int:
    return reports.mrr(book.db)[currency]["mrr"]


# ---- MRR normalisation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "interval", "count", "mrr"),
    [
        (1000, "month", 1, 1000),
        (12000, "year", 1, 1000),
        (3000, "month", 3, 1000),
        (1000, "week", 1, 4333),  # 1000 x 52 / 12 = 4333.33
        (1000, "week", 2, 2167),  # 1000 x 52 / 24 = 2166.67
        (100, "day", 1, 3042),  # 100 x 365 / 12 = 3041.67
        (10000, "year", 2, 417),  # 10000 / 24 = 416.67
    ],
)
def test_mrr_is_the_recurring_amount_normalised_to_a_month(
    book: Book, amount: int, interval: str, count: int, mrr: int
) -> None:
    book.plan("p", T(2024, 1, 1), flat(amount), interval=interval, interval_count=count)
    book.customer("cus", T(2024, 1, 1))
    book.subscribe("sub", "cus", "p", T(2024, 1, 1))
    assert book.subscription("sub")["mrr"] == mrr
    figures = reports.mrr(book.db)["USD"]
    assert figures == {
        "mrr": mrr,
        "arr": 12 * mrr,
        "paying_customers": 1,
        "arpu": mrr,
        "active_subscriptions": 1,
    }


def test_trialing_subscriptions_bring_no_mrr_until_they_convert(book: Book) -> None:
    book.plan("trial", T(2024, 1, 1), flat(1000), trial_days=7)
    book.customer("cus", T(2024, 1, 1))
    book.subscribe("sub", "cus", "trial", T(2024, 1, 1))
    assert reports.mrr(book.db) == {}
    book.advance(T(2024, 1, 8))
    assert mrr_of(book) == 1000
    churn = reports.churn(book.db, T(2024, 1, 1), T(2024, 2, 1))["USD"]
    assert (churn["trials_ended"], churn["trials_converted"], churn["trial_conversion_rate"]) == (
        1,
        1,
        1.0,
    )


# ---- movements, per customer -------------------------------------------------------------


@pytest.fixture
def two_subs(book: Book) -> Book:
    t = T(2024, 1, 1)
    book.plan("basic", t, flat(1000))
    book.plan("pro", t, flat(3000))
    book.customer("cus", t)
    book.subscribe("one", "cus", "basic", t)
    book.subscribe("two", "cus", "basic", T(2024, 1, 2))
    return book


def customer_moves(book: Book) -> list[tuple]:
    rows = book.db.query(
        "SELECT at, kind, delta, mrr_before, mrr_after FROM mrr_movements ORDER BY at"
    )
    return [(r["kind"], r["delta"], r["mrr_before"], r["mrr_after"]) for r in rows]


def test_a_second_subscription_is_expansion_not_a_new_customer(two_subs: Book) -> None:
    assert customer_moves(two_subs) == [("new", 1000, 0, 1000), ("expansion", 1000, 1000, 2000)]
    assert reports.mrr(two_subs.db)["USD"]["paying_customers"] == 1
    assert reports.mrr(two_subs.db)["USD"]["active_subscriptions"] == 2


def test_cancelling_one_of_two_subscriptions_is_contraction_then_the_last_is_churn(
    two_subs: Book,
) -> None:
    two_subs.run(c.Cancel, T(2024, 1, 5), subscription_id="two", immediately=True)
    two_subs.run(c.Cancel, T(2024, 1, 6), subscription_id="one", immediately=True)
    two_subs.run(c.Reactivate, T(2024, 1, 7), subscription_id="one")
    assert customer_moves(two_subs)[2:] == [
        ("contraction", -1000, 2000, 1000),
        ("churn", -1000, 1000, 0),
        ("reactivation", 1000, 0, 1000),
    ]
    moved = reports.movements(two_subs.db, T(2024, 1, 1), T(2024, 2, 1))["USD"]
    assert {k: moved[k] for k in ("new", "expansion", "contraction", "churn", "reactivation")} == {
        "new": 1000,
        "expansion": 1000,
        "contraction": -1000,
        "churn": -1000,
        "reactivation": 1000,
    }
    assert moved["net"] == 1000
    assert (moved["churn_customers"], moved["contraction_customers"]) == (1, 1)


def test_upgrade_is_expansion_and_downgrade_is_contraction(two_subs: Book) -> None:
    two_subs.run(c.ChangePlan, T(2024, 1, 10), subscription_id="one", plan_id="pro")
    two_subs.run(c.ChangePlan, T(2024, 1, 20), subscription_id="one", plan_id="basic")
    assert customer_moves(two_subs)[2:] == [
        ("expansion", 2000, 2000, 4000),
        ("contraction", -2000, 4000, 2000),
    ]


def test_an_interval_change_that_keeps_the_mrr_is_no_movement(book: Book) -> None:
    t = T(2024, 1, 1)
    book.plan("basic", t, flat(1000))
    book.plan("annual", t, flat(12000), interval="year")
    book.customer("cus", t)
    book.subscribe("sub", "cus", "basic", t)
    book.run(c.ChangePlan, T(2024, 1, 10), subscription_id="sub", plan_id="annual")
    assert customer_moves(book) == [("new", 1000, 0, 1000)]


# ---- a small book, and the analysts' figures over it --------------------------------------


@pytest.fixture
def small_book(book: Book) -> Book:
    """Four USD customers and one EUR customer from January; February moves; a March signup."""
    t = T(2024, 1, 1)
    book.plan("basic", t, flat(1000))
    book.plan("pro", t, flat(3000))
    book.plan("annual", t, flat(12000), interval="year")
    book.plan("euro", t, flat(2000), currency="EUR")
    for customer in "abcde":
        book.customer(customer, t)
    book.customer("f", t, token="tok_chargeDeclined")
    book.subscribe("a1", "a", "basic", t)
    book.subscribe("b1", "b", "pro", t)
    book.subscribe("c1", "c", "basic", t)
    book.subscribe("c2", "c", "basic", t)
    book.subscribe("d1", "d", "annual", t)
    book.subscribe("e1", "e", "euro", t)
    book.advance(T(2024, 2, 1))
    book.run(c.Cancel, T(2024, 2, 5), subscription_id="c2", immediately=True)
    book.run(c.ChangePlan, T(2024, 2, 10), subscription_id="a1", plan_id="pro")
    book.run(c.Cancel, T(2024, 2, 15), subscription_id="b1", immediately=True)
    book.run(c.Cancel, T(2024, 2, 20), subscription_id="e1", immediately=True)
    book.advance(T(2024, 3, 5))
    book.subscribe("f1", "f", "basic", T(2024, 3, 5))
    book.advance(T(2024, 3, 31))
    return book


def test_mrr_as_of_a_past_time_is_the_value_then(small_book: Book) -> None:
    db = small_book.db
    assert reports.mrr(db, T(2023, 12, 31)) == {}
    assert reports.mrr(db, T(2024, 1, 15)) == {
        "EUR": {
            "mrr": 2000,
            "arr": 24000,
            "paying_customers": 1,
            "arpu": 2000,
            "active_subscriptions": 1,
        },
        "USD": {
            "mrr": 7000,
            "arr": 84000,
            "paying_customers": 4,
            "arpu": 1750,
            "active_subscriptions": 5,
        },
    }
    # after the February moves: a 3000 + c 1000 + d 1000
    assert reports.mrr(db, T(2024, 2, 29))["USD"] == {
        "mrr": 5000,
        "arr": 60000,
        "paying_customers": 3,
        "arpu": 1667,
        "active_subscriptions": 3,
    }
    assert reports.mrr(db, T(2024, 2, 29))["EUR"]["mrr"] == 0
    # f signed up on March 5th and churned involuntarily a week later
    assert reports.mrr(db, T(2024, 3, 6))["USD"]["mrr"] == 6000
    assert reports.mrr(db)["USD"]["mrr"] == 5000


def test_movements_in_a_window_are_keyed_by_currency(small_book: Book) -> None:
    moved = reports.movements(small_book.db, T(2024, 2, 1), T(2024, 3, 1))
    assert moved == {
        "EUR": {
            "new": 0,
            "expansion": 0,
            "contraction": 0,
            "churn": -2000,
            "reactivation": 0,
            "net": -2000,
            "new_customers": 0,
            "expansion_customers": 0,
            "contraction_customers": 0,
            "churn_customers": 1,
            "reactivation_customers": 0,
        },
        "USD": {
            "new": 0,
            "expansion": 2000,
            "contraction": -1000,
            "churn": -3000,
            "reactivation": 0,
            "net": -2000,
            "new_customers": 0,
            "expansion_customers": 1,
            "contraction_customers": 1,
            "churn_customers": 1,
            "reactivation_customers": 0,
        },
    }


def test_churn_rates_are_fractions_of_the_start_of_the_window(small_book: Book) -> None:
    churn = reports.churn(small_book.db, T(2024, 2, 1), T(2024, 3, 1))
    assert churn["USD"] == {
        "customers_at_start": 4,
        "customers_churned": 1,
        "new_customers_churned": 0,
        "logo_churn_rate": 0.25,
        "mrr_at_start": 7000,
        "churned_mrr": 3000,
        "contraction_mrr": 1000,
        "expansion_mrr": 2000,
        "reactivation_mrr": 0,
        "revenue_churn_rate": round(4000 / 7000, 6),
        "net_revenue_churn_rate": round(2000 / 7000, 6),
        # at March 1st a (pro 3000), c (1000) and d (annual, 1000 a month): 5000 / 3
        "arpu": 1667,
        # 4000/7000 over February's 29 days is 4000/7000 x 30.436875/29 a month:
        # 1667 / that = 1667 x 7000 x 29 / (4000 x 30.436875) = 2779.53 -> 2780
        "ltv": 2780,
    }
    assert churn["EUR"]["logo_churn_rate"] == 1.0
    assert (churn["EUR"]["arpu"], churn["EUR"]["ltv"]) == (0, 0)  # no one left paying
    assert churn["EUR"]["revenue_churn_rate"] == 1.0


def test_a_customer_won_and_lost_inside_the_window_does_not_count_in_logo_churn(
    small_book: Book,
) -> None:
    # f started paying on March 5th and churned in March (declined card, dunning exhausted)
    churn = reports.churn(small_book.db, T(2024, 3, 1), T(2024, 4, 1))["USD"]
    assert (churn["customers_at_start"], churn["customers_churned"]) == (3, 0)
    assert churn["new_customers_churned"] == 1
    assert churn["logo_churn_rate"] == 0.0


def test_churn_over_an_empty_base_has_no_rate(book: Book) -> None:
    book.plan("basic", T(2024, 1, 1))
    book.customer("cus", T(2024, 1, 1))
    book.subscribe("sub", "cus", "basic", T(2024, 1, 10))
    churn = reports.churn(book.db, T(2024, 1, 1), T(2024, 2, 1))["USD"]
    assert (churn["customers_at_start"], churn["logo_churn_rate"]) == (0, None)
    assert churn["revenue_churn_rate"] is None


def test_cohorts_are_logo_retention_by_first_paid_month(small_book: Book) -> None:
    assert reports.cohorts(small_book.db) == [
        # a, b, c, d (USD) and e (EUR): b and e gone by the end of February
        {"cohort": "2024-01", "customers": 5, "retention": [1.0, 0.6, 0.6]},
        # f paid (MRR counted while past due) and churned in the same month
        {"cohort": "2024-03", "customers": 1, "retention": [0.0]},
    ]


def test_revenue_billed_collected_and_written_off_by_month(small_book: Book) -> None:
    revenue = reports.revenue(small_book.db, T(2024, 1, 1), T(2024, 4, 1))
    # January: 1000 + 3000 + 1000 + 1000 + 12000 signups.
    # February: renewals 1000 + 3000 + 1000 + 1000, and a's upgrade on the 10th:
    #   20 of 29 days: -690 credit, +2069 charge = 1379.
    # March: renewals a 3000 + c 1000, f's 1000 never collected.
    assert revenue["USD"] == {
        "billed": 18000 + 7379 + 5000,
        "tax": 0,
        "collected": 18000 + 7379 + 4000,
        "written_off": 1000,
        "outstanding": 0,
        # Recognised, by the second: d's annual 12000 over 366 days earns trunc(12000 x
        # days/366) by each month's end: 1016 (31 days), 1967 (60), 2983 (91).
        # January: 4 monthly invoices 6000 + 1016. February: renewals 6000 (cancelled
        # ones were not credited) + the upgrade's 1379 + 1967 - 1016. March: 4000 + f's
        # 1000 for 27 of 31 days (870: written off, still recognised) + 2983 - 1967.
        "recognised": 7016 + 8330 + 5886,
        # at April 1st: d's 12000 - 2983, f's 1000 - 870
        "deferred_at_end": 9017 + 130,
        "months": {
            "2024-01": {"billed": 18000, "tax": 0, "collected": 18000, "recognised": 7016},
            "2024-02": {"billed": 7379, "tax": 0, "collected": 7379, "recognised": 8330},
            "2024-03": {"billed": 5000, "tax": 0, "collected": 4000, "recognised": 5886},
        },
    }
    assert revenue["EUR"]["billed"] == 4000
    assert revenue["EUR"]["collected"] == 4000


def test_revenue_reports_tax_and_outstanding_invoices(book: Book) -> None:
    t = T(2024, 1, 1)
    book.plan("basic", t)
    book.run(c.SetTaxRate, t, country="GB", rate_ppm=200_000)
    book.customer("uk", t, country="GB")
    book.customer("broke", t, token="tok_chargeDeclined")
    book.subscribe("s1", "uk", "basic", t)
    book.subscribe("s2", "broke", "basic", t)
    revenue = reports.revenue(book.db, t, T(2024, 2, 1))["USD"]
    assert (revenue["billed"], revenue["tax"], revenue["collected"]) == (2200, 200, 1200)
    assert (revenue["outstanding"], revenue["written_off"]) == (1000, 0)
    assert reports.balance(book.db, "broke") == {"USD": {"outstanding": 1000, "credit": 0}}


def test_the_mrr_report_equals_the_sum_of_live_subscriptions(small_book: Book) -> None:
    rows = small_book.db.query(
        "SELECT currency, SUM(mrr) AS mrr FROM subscriptions GROUP BY currency"
    )
    by_currency = {r["currency"]: int(r["mrr"]) for r in rows}
    assert {k: v["mrr"] for k, v in reports.mrr(small_book.db).items()} == by_currency


# ---- rebuilds ------------------------------------------------------------------------------


def test_rebuilding_each_projection_gives_back_the_live_rows(small_book: Book) -> None:
    runtime = small_book.rt
    runtime.catch_up()
    tables = projection_tables(runtime)
    live = dump_tables(runtime.db, tables)
    assert len(live["invoices"]) > 10 and len(live["mrr_movements"]) > 5
    for projection in runtime.projections:
        applied = runtime.feeder.rebuild(projection)
        assert applied == small_book.head()
    assert dump_tables(runtime.db, tables) == live
    assert runtime.feeder.positions() == {p.name: small_book.head() for p in runtime.projections}


def test_a_fresh_read_database_fed_from_the_store_equals_the_live_one(
    small_book: Book, tmp_path: Path
) -> None:
    small_book.rt.catch_up()
    tables = projection_tables(small_book.rt)
    live = dump_tables(small_book.rt.db, tables)
    config = Config(
        data_dir=small_book.config.data_dir, read_db=f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    )
    fresh = Runtime(config)
    try:
        assert dump_tables(fresh.db, tables)["invoices"] == []
        fresh.catch_up()
        assert dump_tables(fresh.db, tables) == live
    finally:
        fresh.close()


def test_catching_up_twice_applies_nothing_the_second_time(small_book: Book) -> None:
    small_book.rt.catch_up()
    assert small_book.rt.catch_up() == 0
    assert small_book.rt.feeder.positions() == {
        p.name: small_book.head() for p in small_book.rt.projections
    }
