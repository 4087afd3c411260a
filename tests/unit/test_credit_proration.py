"""Proration honours what the customer paid: in a discounted period, the unused-time credit
is a share of the price after the coupon, and so is the remaining-time charge. Pinned to the
cent with hand-worked examples (README, "The billing rules")."""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction

import pytest
from ledger_support import Book, T, flat, lines_of

from domain import commands as c
from domain.invoicing import Coupon, period_price, proration_lines


def seconds(a: datetime, b: datetime) -> int:
    return int((b - a).total_seconds())


def share(amount: int, part: int, whole: int) -> int:
    """amount x part / whole, nearest cent, halves away from zero: written out independently."""
    exact = Fraction(amount * part, whole)
    sign = -1 if exact < 0 else 1
    return sign * int(abs(exact) + Fraction(1, 2))


def amounts(invoice: dict) -> list[tuple[str, int]]:
    return [(line["kind"], line["amount"]) for line in invoice["lines"]]


@pytest.fixture
def usd(book: Book) -> Book:
    t = T(2024, 1, 1)
    book.plan("basic", t, flat(1000), name="Basic")
    book.plan("pro", t, flat(3000), name="Pro")
    book.customer("cus", t)
    return book


def coupon(book: Book, code: str, **terms: object) -> None:
    book.run(c.DefineCoupon, T(2024, 1, 1), code=code, **terms)


# ---- the rule, as a function -----------------------------------------------------------------


def test_a_periods_price_after_a_coupon() -> None:
    twenty = Coupon("TWENTY", percent_off_bp=2000, duration="forever")
    third = Coupon("THIRD", percent_off_bp=3333, duration="forever")
    five = Coupon("FIVE", amount_off=500, currency="USD", duration="forever")
    assert period_price(3000, None, "USD") == 3000
    assert period_price(3000, twenty, "USD") == 2400
    assert period_price(1000, third, "USD") == 667  # 333.3 off rounds to 333
    assert period_price(3000, third, "USD") == 2000  # 999.9 off rounds to 1000
    assert period_price(3000, five, "USD") == 2500
    assert period_price(400, five, "USD") == 0  # never below nothing


def test_proration_lines_take_the_prices_they_are_given_and_say_why() -> None:
    start, end, at = T(2024, 1, 1), T(2024, 2, 1), T(2024, 1, 16, 12)
    lines = proration_lines(2400, 800, start, end, at, "Pro", "Basic", ", less coupon TWENTY")
    assert [(ln.kind, ln.description, ln.amount) for ln in lines] == [
        ("proration_credit", "Unused time on Pro after 2024-01-16, less coupon TWENTY", -1200),
        ("proration_charge", "Remaining time on Basic after 2024-01-16, less coupon TWENTY", 400),
    ]


# ---- through the ledger --------------------------------------------------------------------


def test_a_downgrade_half_way_through_a_discounted_month_credits_what_was_paid(
    usd: Book,
) -> None:
    coupon(usd, "TWENTY", percent_off_bp=2000, duration="forever")
    usd.subscribe("sub", "cus", "pro", T(2024, 1, 1), coupon="TWENTY")
    assert amounts(usd.invoice("INV-000001")) == [("recurring", 3000), ("discount", -600)]
    half_way = T(2024, 1, 16, 12)
    assert seconds(T(2024, 1, 1), half_way) * 2 == seconds(T(2024, 1, 1), T(2024, 2, 1))

    usd.run(c.ChangePlan, half_way, subscription_id="sub", plan_id="basic")

    down = usd.invoice("INV-000002")
    # paid 3000 - 20% = 2400 for January: half of it, 1200, is unused; the rest of January
    # on Basic costs half of 1000 - 20% = 400. At list price it would be -1500 + 500.
    assert amounts(down) == [("proration_credit", -1200), ("proration_charge", 400)]
    assert [line["description"] for line in down["lines"]] == [
        "Unused time on Pro (flat) after 2024-01-16, less coupon TWENTY",
        "Remaining time on Basic (flat) after 2024-01-16, less coupon TWENTY",
    ]
    assert (down["total"], down["amount_due"]) == (-800, 0)
    usd.advance(T(2024, 2, 1))
    renewal = usd.invoice("INV-000003")
    assert amounts(renewal) == [("recurring", 1000), ("discount", -200)]
    assert (renewal["credit_applied"], renewal["amount_due"]) == (800, 0)


def test_an_upgrade_to_the_second_in_a_discounted_month(usd: Book) -> None:
    coupon(usd, "THIRD", percent_off_bp=3333, duration="forever")
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1), coupon="THIRD")
    at = T(2024, 1, 20, 7, 13, 29)
    usd.run(c.ChangePlan, at, subscription_id="sub", plan_id="pro")

    unused, whole = seconds(at, T(2024, 2, 1)), seconds(T(2024, 1, 1), T(2024, 2, 1))
    assert (unused, whole) == (1_010_791, 2_678_400)
    invoice = usd.invoice("INV-000002")
    # Basic after 33.33%: 1000 - 333 = 667 -> 667 x 1010791/2678400 = 251.72 -> 252
    # Pro after 33.33%: 3000 - 1000 = 2000 -> 2000 x 1010791/2678400 = 754.77 -> 755
    assert [ln["amount"] for ln in lines_of(invoice, "proration_credit")] == [
        -share(667, unused, whole)
    ]
    assert [ln["amount"] for ln in lines_of(invoice, "proration_charge")] == [
        share(2000, unused, whole)
    ]
    assert amounts(invoice) == [("proration_credit", -252), ("proration_charge", 755)]
    assert invoice["amount_due"] == 503


def test_an_amount_off_coupon_lowers_both_sides_by_the_same_share(usd: Book) -> None:
    coupon(usd, "FIVE", amount_off=500, currency="USD", duration="forever")
    usd.subscribe("sub", "cus", "pro", T(2024, 1, 1), coupon="FIVE")
    usd.run(c.ChangePlan, T(2024, 1, 20), subscription_id="sub", plan_id="basic")
    # 12 of 31 days unused: (3000 - 500) x 12/31 = 967.74, (1000 - 500) x 12/31 = 193.55
    assert amounts(usd.invoice("INV-000002")) == [
        ("proration_credit", -968),
        ("proration_charge", 194),
    ]


def test_once_the_coupon_is_used_up_the_period_prorates_at_list_price(usd: Book) -> None:
    coupon(usd, "HALF1", percent_off_bp=5000, duration="repeating", periods=1)
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1), coupon="HALF1")
    # January was billed at half price: an upgrade in January prorates half prices
    usd.run(c.ChangePlan, T(2024, 1, 16, 12), subscription_id="sub", plan_id="pro")
    assert amounts(usd.invoice("INV-000002")) == [
        ("proration_credit", -250),
        ("proration_charge", 750),
    ]
    usd.advance(T(2024, 2, 1))
    assert amounts(usd.invoice("INV-000003")) == [("recurring", 3000)]  # coupon used up
    # February (29 days) was billed at list price: half of it back at list price
    usd.run(c.ChangePlan, T(2024, 2, 15, 12), subscription_id="sub", plan_id="basic")
    assert amounts(usd.invoice("INV-000004")) == [
        ("proration_credit", -1500),
        ("proration_charge", 500),
    ]


def test_a_new_cycle_credits_the_discounted_rest_and_bills_the_new_one_discounted(
    usd: Book,
) -> None:
    usd.plan("annual", T(2024, 1, 1), flat(12000), interval="year", name="Annual")
    coupon(usd, "TWENTY", percent_off_bp=2000, duration="forever")
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1), coupon="TWENTY")
    usd.advance(T(2024, 2, 1))
    usd.run(c.ChangePlan, T(2024, 2, 10), subscription_id="sub", plan_id="annual")
    invoice = usd.invoice("INV-000003")
    # 20 of February's 29 days unused, of 1000 - 20% = 800: 551.72 -> 552
    assert amounts(invoice) == [
        ("proration_credit", -552),
        ("recurring", 12000),
        ("discount", -2400),
    ]
    assert invoice["total"] == 9048
