"""Invoicing: per-second proration, coupons, tax and the customer's credit balance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import CurrencyMismatch, InvalidInput, UnknownCurrency
from domain.invoicing import (
    Coupon,
    Line,
    Totals,
    compute_totals,
    discount_for,
    proration_lines,
    tax_line,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


APRIL = (utc(2024, 4, 1), utc(2024, 5, 1))  # 30 days


def test_upgrade_half_way_through_credits_and_charges_to_the_cent() -> None:
    lines = proration_lines(1000, 3000, *APRIL, utc(2024, 4, 16), "Basic", "Pro")
    assert [(line.kind, line.amount) for line in lines] == [
        ("proration_credit", -500),
        ("proration_charge", 1500),
    ]
    assert lines[0].description == "Unused time on Basic after 2024-04-16"
    assert lines[1].description == "Remaining time on Pro after 2024-04-16"
    assert all(
        (line.period_start, line.period_end) == (utc(2024, 4, 16), APRIL[1]) for line in lines
    )


def test_proration_is_by_the_second_with_one_rounding_per_line() -> None:
    # March 2024: 31 days = 2_678_400 s. From 03-11 07:23:45 to 04-01: 20d 16:36:15 = 1_787_775 s.
    at = utc(2024, 3, 11, 7, 23, 45)
    lines = proration_lines(999, 2999, utc(2024, 3, 1), utc(2024, 4, 1), at, "Basic", "Pro")
    # 999 * 1_787_775 / 2_678_400 = 666.81 -> 667; 2999 * ... = 2001.77 -> 2002
    assert [line.amount for line in lines] == [-667, 2002]


def test_proration_ignores_sub_second_time() -> None:
    at = utc(2024, 3, 11, 7, 23, 45) + timedelta(microseconds=999_999)
    lines = proration_lines(999, 2999, utc(2024, 3, 1), utc(2024, 4, 1), at, "Basic", "Pro")
    assert [line.amount for line in lines] == [-667, 2002]


def test_proration_omits_zero_lines() -> None:
    assert proration_lines(1000, 3000, *APRIL, APRIL[1], "Basic", "Pro") == []
    only_charge = proration_lines(0, 3000, *APRIL, APRIL[0], "Free", "Pro")
    assert [(line.kind, line.amount) for line in only_charge] == [("proration_charge", 3000)]


def test_proration_refuses_times_outside_the_period() -> None:
    for at in (utc(2024, 3, 31), utc(2024, 5, 1, 0, 0, 1), datetime(2024, 4, 2)):
        with pytest.raises(InvalidInput):
            proration_lines(1000, 3000, *APRIL, at, "Basic", "Pro")
    with pytest.raises(InvalidInput):
        proration_lines(1000, 3000, APRIL[0], APRIL[0], APRIL[0], "Basic", "Pro")


@given(
    st.integers(0, 10**9),
    st.integers(1, 400 * 86400),
    st.data(),
)
def test_swapping_to_an_equal_price_nets_to_zero(
    amount: int, length: int, data: st.DataObject
) -> None:
    start = utc(2024, 1, 1)
    end = start + timedelta(seconds=length)
    at = start + timedelta(seconds=data.draw(st.integers(0, length)))
    lines = proration_lines(amount, amount, start, end, at, "A", "B")
    assert abs(sum(line.amount for line in lines)) <= 1
    assert sum(line.amount for line in lines) == 0  # same fraction, same rounding


def test_line_dict_round_trip_keeps_datetimes() -> None:
    line = Line("recurring", "Pro (month)", 3000, *APRIL)
    data = line.to_dict()
    assert data["period_start"] == APRIL[0]
    assert Line.from_dict(data) == line
    assert Line.from_dict({**data, "period_start": "2024-04-01T00:00:00Z"}) == line


def test_line_refuses_bad_kind_amount_and_naive_times() -> None:
    with pytest.raises(InvalidInput):
        Line("refund", "x", 1)
    with pytest.raises(InvalidInput):
        Line("recurring", "x", 1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        Line("recurring", "x", 1, datetime(2024, 1, 1))
    with pytest.raises(InvalidInput):
        Line("recurring", "x", 1, APRIL[1], APRIL[0])


def test_percent_coupon_discounts_with_half_up_rounding() -> None:
    assert discount_for(Coupon("TWENTY", percent_off_bp=2000), 1999, "USD") == -400  # 399.8
    assert discount_for(Coupon("EIGHTH", percent_off_bp=1250), 1000, "USD") == -125
    assert discount_for(Coupon("EIGHTH", percent_off_bp=1250), 1004, "USD") == -126  # 125.5
    assert discount_for(Coupon("FREE", percent_off_bp=10000), 1234, "JPY") == -1234


def test_amount_coupon_never_discounts_below_zero() -> None:
    five = Coupon("FIVE", amount_off=500, currency="USD")
    assert discount_for(five, 1000, "USD") == -500
    assert discount_for(five, 300, "USD") == -300
    assert discount_for(five, 0, "USD") == 0
    assert discount_for(five, -200, "USD") == 0
    with pytest.raises(CurrencyMismatch):
        discount_for(five, 1000, "EUR")
    with pytest.raises(UnknownCurrency):
        discount_for(Coupon("P", percent_off_bp=1), 1000, "XYZ")


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"percent_off_bp": 2000, "amount_off": 500, "currency": "USD"},
        {"percent_off_bp": 0},
        {"percent_off_bp": 10001},
        {"percent_off_bp": 2000, "currency": "USD"},
        {"amount_off": 500},
        {"amount_off": 0, "currency": "USD"},
        {"amount_off": 500, "currency": "XYZ"},
        {"percent_off_bp": 2000, "duration": "sometimes"},
        {"percent_off_bp": 2000, "duration": "repeating"},
        {"percent_off_bp": 2000, "duration": "repeating", "periods": 0},
        {"percent_off_bp": 2000, "duration": "once", "periods": 3},
    ],
)
def test_invalid_coupons_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        Coupon("CODE", **kwargs)  # type: ignore[arg-type]


def test_coupon_dict_round_trip() -> None:
    for coupon in (
        Coupon("THREE", percent_off_bp=1500, duration="repeating", periods=3),
        Coupon("FIVE", amount_off=500, currency="EUR", duration="forever"),
    ):
        assert Coupon.from_dict(coupon.to_dict()) == coupon


def test_tax_line_names_rate_and_country() -> None:
    line = tax_line(1000, 88_750, "US")
    assert line == Line("tax", "Tax 8.875% (US)", 89)
    assert tax_line(1999, 200_000, "GB") == Line("tax", "Tax 20% (GB)", 400)
    assert tax_line(1999, 0, "GB") is None


def test_totals_apply_tax_then_spend_credit() -> None:
    lines = [
        Line("recurring", "Pro", 1000),
        Line("discount", "TWENTY", -200),
        Line("tax", "Tax 20% (GB)", 160),  # ignored: tax is recomputed from the subtotal
    ]
    assert compute_totals(lines, 200_000, 300) == Totals(
        subtotal=800, tax=160, total=960, credit_applied=300, amount_due=660, credit_balance_after=0
    )
    assert compute_totals(lines, 200_000, 5000) == Totals(800, 160, 960, 960, 0, 4040)
    assert compute_totals(lines, 0, 0) == Totals(800, 0, 800, 0, 800, 0)


def test_downgrade_net_credit_and_its_tax_carry_to_the_credit_balance() -> None:
    lines = [Line("proration_credit", "Unused Pro", -3000), Line("proration_charge", "Basic", 1000)]
    assert compute_totals(lines, 200_000, 100) == Totals(-2000, -400, -2400, 0, 0, 2500)


def test_totals_round_tax_on_the_subtotal_once() -> None:
    lines = [Line("recurring", "a", 100), Line("recurring", "b", 100)]
    assert compute_totals(lines, 88_750, 0).tax == 18  # 17.75, not 9 + 9


def test_totals_refuse_negative_credit_and_bad_rates() -> None:
    with pytest.raises(InvalidInput):
        compute_totals([], 0, -1)
    with pytest.raises(InvalidInput):
        compute_totals([], -1, 0)
    with pytest.raises(InvalidInput):
        compute_totals([], 1_000_001, 0)


_lines = st.lists(
    st.builds(
        Line,
        st.sampled_from(("recurring", "proration_credit", "proration_charge", "discount", "tax")),
        st.just("line"),
        st.integers(-(10**9), 10**9),
    ),
    max_size=8,
)


@given(_lines, st.integers(0, 1_000_000), st.integers(0, 10**10))
def test_totals_add_up_and_conserve_credit(lines: list[Line], rate: int, credit: int) -> None:
    totals = compute_totals(lines, rate, credit)
    subtotal = sum(line.amount for line in lines if line.kind != "tax")
    assert totals.subtotal == subtotal
    assert totals.total == subtotal + totals.tax
    assert totals.amount_due >= 0
    assert 0 <= totals.credit_applied <= credit
    assert totals.amount_due + totals.credit_applied == max(totals.total, 0)
    assert credit + max(-totals.total, 0) - totals.credit_applied == totals.credit_balance_after
    assert totals.credit_balance_after >= 0
