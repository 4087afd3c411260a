"""Money: exact minor units, one rounding rule, strict parsing."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidAmount, InvalidInput, UnknownCurrency
from domain.money import (
    CURRENCY_EXPONENTS,
    Money,
    apply_ppm,
    exponent,
    format_amount,
    format_percent_ppm,
    parse_amount,
    parse_percent_ppm,
    prorate,
    round_half_up,
)


def test_exponents_cover_zero_two_and_three_decimal_currencies() -> None:
    assert exponent("USD") == 2
    assert exponent("JPY") == 0
    assert exponent("KWD") == 3
    assert all(len(code) == 3 and code.isupper() for code in CURRENCY_EXPONENTS)


@pytest.mark.parametrize("code", ["XXX", "usd", "US", "USDT", "", 840])
def test_unknown_or_malformed_currency_is_refused(code: object) -> None:
    with pytest.raises(UnknownCurrency):
        exponent(code)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (5, 2, 3),
        (-5, 2, -3),
        (7, 2, 4),
        (-7, 2, -4),
        (1, 3, 0),
        (-1, 3, 0),
        (2, 3, 1),
        (-2, 3, -1),
        (5, -2, -3),
        (-5, -2, 3),
        (0, 7, 0),
        (10, 5, 2),
    ],
)
def test_round_half_up_sends_ties_away_from_zero_for_both_signs(
    numerator: int, denominator: int, expected: int
) -> None:
    assert round_half_up(numerator, denominator) == expected


def test_round_half_up_refuses_zero_denominator_and_floats() -> None:
    with pytest.raises(InvalidInput):
        round_half_up(1, 0)
    with pytest.raises(InvalidInput):
        round_half_up(1.5, 1)  # type: ignore[arg-type]


@given(st.integers(-(10**18), 10**18), st.integers(1, 10**12) | st.integers(-(10**12), -1))
def test_round_half_up_matches_decimal_round_half_up(numerator: int, denominator: int) -> None:
    with localcontext() as ctx:
        ctx.prec = 100
        expected = (Decimal(numerator) / Decimal(denominator)).quantize(
            Decimal(1), rounding=ROUND_HALF_UP
        )
    assert round_half_up(numerator, denominator) == int(expected)


@pytest.mark.parametrize(
    ("text", "currency", "expected"),
    [
        ("10.00", "USD", 1000),
        ("10", "USD", 1000),
        ("9.5", "USD", 950),
        ("+0.01", "USD", 1),
        (" 12.34 ", "EUR", 1234),
        ("1200", "JPY", 1200),
        ("1.25", "KWD", 1250),
        ("0.001", "KWD", 1),
    ],
)
def test_parse_amount_scales_by_the_currency_exponent(
    text: str, currency: str, expected: int
) -> None:
    assert parse_amount(text, currency) == expected


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("0.005", "USD"),
        ("1200.5", "JPY"),
        ("1.0001", "KWD"),
        ("1,000.00", "USD"),
        ("abc", "USD"),
        ("", "USD"),
        ("1e3", "USD"),
        ("nan", "USD"),
        ("inf", "USD"),
        (".5", "USD"),
        ("5.", "USD"),
        ("1 000", "USD"),
        ("--1", "USD"),
        ("\u0661\u0660", "USD"),  # Arabic-Indic digits are not plain ASCII amounts
    ],
)
def test_parse_amount_refuses_ambiguous_or_too_precise_text(text: str, currency: str) -> None:
    with pytest.raises(InvalidAmount):
        parse_amount(text, currency)


def test_parse_amount_takes_negative_only_when_allowed() -> None:
    with pytest.raises(InvalidAmount):
        parse_amount("-3.50", "USD")
    assert parse_amount("-3.50", "USD", allow_negative=True) == -350


@pytest.mark.parametrize(
    ("minor", "currency", "expected"),
    [
        (1000, "USD", "10.00"),
        (5, "USD", "0.05"),
        (-350, "USD", "-3.50"),
        (-5, "USD", "-0.05"),
        (1200, "JPY", "1200"),
        (1250, "KWD", "1.250"),
        (0, "KWD", "0.000"),
    ],
)
def test_format_amount_renders_the_currency_decimals(
    minor: int, currency: str, expected: str
) -> None:
    assert format_amount(minor, currency) == expected


@given(st.integers(-(10**15), 10**15), st.sampled_from(sorted(CURRENCY_EXPONENTS)))
def test_format_then_parse_round_trips(minor: int, currency: str) -> None:
    assert parse_amount(format_amount(minor, currency), currency, allow_negative=True) == minor


def test_money_str_shows_code_and_decimals() -> None:
    assert str(Money(1000, "USD")) == "USD 10.00"
    assert str(Money(1200, "JPY")) == "JPY 1200"
    assert str(Money(1250, "KWD")) == "KWD 1.250"
    assert str(Money(-350, "USD")) == "USD -3.50"


@pytest.mark.parametrize("amount", [True, 1.0, "1", None])
def test_money_refuses_non_integer_amounts(amount: object) -> None:
    with pytest.raises(InvalidAmount):
        Money(amount, "USD")  # type: ignore[arg-type]


def test_money_refuses_unknown_currency() -> None:
    with pytest.raises(UnknownCurrency):
        Money(1, "XYZ")


def test_prorate_rounds_once_and_checks_its_fraction() -> None:
    assert prorate(1000, 17, 31) == 548  # 548.387
    assert prorate(1000, 1, 2) == 500
    assert prorate(1001, 1, 2) == 501  # 500.5 rounds up
    assert prorate(-1001, 1, 2) == -501  # and away from zero when negative
    assert prorate(1000, 0, 31) == 0
    assert prorate(1000, 31, 31) == 1000
    for part, whole in ((32, 31), (-1, 31), (1, 0)):
        with pytest.raises(InvalidInput):
            prorate(1000, part, whole)


def test_apply_ppm_taxes_to_the_nearest_minor_unit() -> None:
    assert apply_ppm(1999, 200_000) == 400  # 399.8
    assert apply_ppm(1234, 200_000) == 247  # 246.8
    assert apply_ppm(1000, 88_750) == 89  # 88.75
    assert apply_ppm(200, 88_750) == 18  # 17.75
    assert apply_ppm(400, 88_750) == 36  # 35.5 tie rounds up
    assert apply_ppm(-400, 88_750) == -36  # and away from zero for credits
    assert apply_ppm(1000, 0) == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20", 200_000),
        ("20%", 200_000),
        (" 20 % ", 200_000),
        ("8.875", 88_750),
        ("8.8751", 88_751),
        ("8.87500", 88_750),
        ("0", 0),
        ("100", 1_000_000),
    ],
)
def test_parse_percent_ppm_is_exact(text: str, expected: int) -> None:
    assert parse_percent_ppm(text) == expected


@pytest.mark.parametrize("text", ["-5", "100.0001", "8.87501", "abc", "", "1e2", "nan", "20%%"])
def test_parse_percent_ppm_refuses_negative_excessive_or_too_fine(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_percent_ppm(text)


def test_format_percent_ppm_drops_trailing_zeros() -> None:
    assert format_percent_ppm(200_000) == "20"
    assert format_percent_ppm(88_750) == "8.875"
    assert format_percent_ppm(1) == "0.0001"
