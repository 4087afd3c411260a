"""Finance figures through the installed `subledger` command, embedded: revenue recognised and
deferred, churn's ARPU and LTV, cohorts by revenue, upcoming renewals, to the cent."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli import Run, as_csv, as_json, runner

WINDOW = ("--from", "2026-01-01", "--to", "2026-02-01")


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """USD: ada $30 -> $60 on Jan 16th; bob (GB, 20% tax) $30, $12.00 refunded on Jan 11th,
    cancelled at the end of January. EUR: eve 50.00 from Jan 10th. Run to March 5th."""
    run = runner(Path(tmp_path_factory.mktemp("finance")) / "book")
    at = ("--at", "2026-01-01")
    for plan, price, currency in (("basic", "30.00", "USD"), ("pro", "60.00", "USD"),
                                  ("euro", "50.00", "EUR")):  # fmt: skip
        run("plan", "define", plan, "--name", plan.title(), "--price", price,
            "--currency", currency, *at)  # fmt: skip
    run("tax", "set-rate", "GB", "20", *at)
    for customer, country in (("ada", "US"), ("bob", "GB"), ("eve", "US")):
        run("customer", "register", customer, "--name", customer.title(), "--email",
            f"{customer}@example.com", "--payment-token", "tok_visa", "--country", country,
            *at)  # fmt: skip
    run("subscribe", "ada", "basic", "--subscription-id", "s1", *at)  # INV-000001 3000
    run("subscribe", "bob", "basic", "--subscription-id", "s2", *at)  # INV-000002 3000 + 600
    run("subscribe", "eve", "euro", "--subscription-id", "s3", "--at", "2026-01-10")
    run("refund", "INV-000002", "--amount", "12.00", "--at", "2026-01-11")  # 1000 + 200 tax
    run("change-plan", "s1", "pro", "--at", "2026-01-16")  # INV-000004: -1548 + 3097
    run("cancel", "s2", "--at", "2026-01-20")  # at period end: churns on February 1st
    run("clock", "advance", "--to", "2026-03-05")
    return run


def test_revenue_recognised_and_deferred_at_the_windows_end(book: Run) -> None:
    revenue = as_json(book("report", "revenue", *WINDOW, "--format", "json"))
    # USD in January: ada 3000 + 1549 (the upgrade's lines), bob 3000 net of tax less the
    # credit note's 1000 (its tax is not revenue): 6549, all of it served by February 1st.
    # February's renewal (ada, 6000) is issued at the window's end: all deferred.
    usd = revenue["USD"]
    assert (usd["billed"], usd["tax"], usd["recognised"], usd["deferred_at_end"]) == (
        8149,
        600,
        6549,
        6000,
    )
    assert usd["months"]["2026-01"]["recognised"] == 6549
    # EUR: 5000 from January 10th to February 10th, 22 of 31 days by February 1st:
    # 5000 x 22/31 = 3548.39 -> 3548; 1452 deferred
    eur = revenue["EUR"]
    assert (eur["recognised"], eur["deferred_at_end"]) == (3548, 1452)
    assert eur["written_off"] == 0  # bad debt is reported apart, never un-recognised
    rows = as_csv(book("report", "revenue", *WINDOW, "--format", "csv"))
    totals = {r["currency"]: r for r in rows if r["month"] == "total"}
    assert (totals["USD"]["recognised"], totals["USD"]["deferred_at_end"]) == ("6549", "6000")
    months = [r for r in rows if r["month"] == "2026-01"]
    assert [(r["currency"], r["recognised"]) for r in months] == [("EUR", "3548"), ("USD", "6549")]


def test_deferred_revenue_at_an_instant(book: Run) -> None:
    figures = as_json(book("report", "deferred", "--at", "2026-01-20", "--format", "json"))
    # USD recognised by Jan 20th: ada 3000 x 19/31 = 1838.71 -> 1838; the upgrade's 4 of 16
    # days: -1548/4 = -387, 3097/4 = 774.25 -> 774; bob 1838; his credit note (-1000 over
    # Jan 11th - Feb 1st, 9 of 21 days) -428.57 -> -428
    assert figures == {
        "EUR": {"billed_net": 5000, "recognised": 1612, "deferred": 3388},  # 10 of 31 days
        "USD": {"billed_net": 6549, "recognised": 1838 - 387 + 774 + 1838 - 428, "deferred": 2914},
    }
    rows = as_csv(book("report", "deferred", "--at", "2026-01-20", "--invoices", "--format", "csv"))
    assert [(r["number"], r["billed_net"], r["recognised"], r["deferred"]) for r in rows] == [
        ("INV-000001", "3000", "1838", "1162"),
        ("INV-000002", "2000", "1410", "590"),  # 3000 - 1000 credited; 1838 - 428
        ("INV-000003", "5000", "1612", "3388"),
        ("INV-000004", "1549", "387", "1162"),
    ]
    later = as_json(book("report", "deferred", "--format", "json"))  # now: all served
    assert later["USD"]["deferred"] == 0 and later["USD"]["billed_net"] == 6549 + 2 * 6000


def test_churn_has_arpu_and_ltv(book: Run) -> None:
    churn = as_json(book("report", "churn", "--from", "2026-02-01", "--to", "2026-03-01",
                         "--format", "json"))  # fmt: skip
    usd = churn["USD"]
    # bob's 3000 of 9000 left in February (28 days): 1/3 x 30.436875/28 a month;
    # ARPU at March 1st is ada's 6000: LTV = 6000 x 3 x 28/30.436875 = 16558.87 -> 16559
    assert (usd["mrr_at_start"], usd["churned_mrr"], usd["arpu"], usd["ltv"]) == (
        9000,
        3000,
        6000,
        16559,
    )
    assert (churn["EUR"]["arpu"], churn["EUR"]["ltv"]) == (5000, None)  # no churn: no LTV
    rows = as_csv(book("report", "churn", "--from", "2026-02-01", "--to", "2026-03-01",
                       "--format", "csv"))  # fmt: skip
    assert {r["currency"]: (r["arpu"], r["ltv"]) for r in rows} == {
        "EUR": ("5000", ""),
        "USD": ("6000", "16559"),
    }


def test_cohorts_by_revenue_are_net_revenue_retention(book: Run) -> None:
    cohorts = as_json(book("report", "cohorts", "--by", "revenue", "--format", "json"))
    assert cohorts == [
        {
            "cohort": "2026-01",
            "currency": "EUR",
            "customers": 1,
            "mrr": 5000,
            "retention": [1.0, 1.0],
        },
        # January's end: ada 6000 + bob 3000; February's: ada's 6000 of 9000
        {
            "cohort": "2026-01",
            "currency": "USD",
            "customers": 2,
            "mrr": 9000,
            "retention": [1.0, 0.6667],
        },
    ]
    rows = as_csv(book("report", "cohorts", "--by", "revenue", "--format", "csv"))
    assert rows[1] == {"cohort": "2026-01", "currency": "USD", "customers": "2", "mrr": "9000",
                       "m0": "1.0", "m1": "0.6667"}  # fmt: skip
    by_logos = as_json(book("report", "cohorts", "--format", "json"))  # the default, unchanged
    assert by_logos == [{"cohort": "2026-01", "customers": 3, "retention": [1.0, 0.6667]}]


def test_renewals_within_a_span(book: Run) -> None:
    soon = as_json(book("report", "renewals", "--within", "30d", "--at", "2026-03-05",
                        "--format", "json"))  # fmt: skip
    assert [
        (r["subscription_id"], r["currency"], r["renews_at"], r["amount"]) for r in soon["renewals"]
    ] == [("s3", "EUR", "2026-03-10T00:00:00Z", 5000), ("s1", "USD", "2026-04-01T00:00:00Z", 6000)]
    assert soon["totals"] == {
        "EUR": {"renewals": 1, "amount": 5000},
        "USD": {"renewals": 1, "amount": 6000},
    }
    # bob cancelled: never listed; 5 days from March 5th reach eve's only
    rows = as_csv(book("report", "renewals", "--within", "120h", "--at", "2026-03-05",
                       "--format", "csv"))  # fmt: skip
    assert [(r["subscription_id"], r["amount"]) for r in rows] == [("s3", "5000")]
    table = book("report", "renewals", "--within", "1w", "--at", "2026-03-05").stdout
    assert "50.00" in table and "total" in table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("renewals", "--within", "30x"), "error: --within: '30x' is not a span like 30d"),
        (("renewals", "--within", "0d"), "error: --within: '0d' is not a span like 30d"),
        (("cohorts", "--by", "logos"), "error: Invalid value for '--by': 'logos' is not one of"),
        (("deferred", "--at", "soon"), "error: --at: 'soon' is not an ISO 8601 date or time"),
    ],
)
def test_bad_finance_options_are_one_line_errors(book: Run, args: tuple, message: str) -> None:
    proc = book("report", *args, check=False)
    assert proc.returncode != 0
    assert proc.stderr.startswith(message) and proc.stderr.count("\n") == 1
    assert proc.stdout == ""
