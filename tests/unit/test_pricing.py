"""Pricing models: flat, per-unit, graduated tiers and volume tiers, in exact minor units."""

from __future__ import annotations

import pytest

from domain.errors import InvalidAmount, InvalidInput, InvalidPricing
from domain.pricing import Pricing, Tier, describe, parse_tier, price_for

TIERS = (Tier(10, 500), Tier(None, 400))


def test_flat_price_ignores_quantity() -> None:
    flat = Pricing("flat", 2500)
    assert price_for(flat, 1) == 2500
    assert price_for(flat, 40) == 2500


def test_per_unit_price_multiplies() -> None:
    assert price_for(Pricing("per_unit", 1000), 3) == 3000


def test_graduated_tiers_price_each_band_separately() -> None:
    tiered = Pricing("tiered", tiers=TIERS)
    assert price_for(tiered, 15) == 10 * 500 + 5 * 400 == 7000
    assert price_for(tiered, 10) == 5000
    assert price_for(tiered, 11) == 5400
    assert price_for(tiered, 1) == 500


def test_volume_tiers_price_all_units_at_the_reached_tier() -> None:
    volume = Pricing("volume", tiers=TIERS)
    assert price_for(volume, 15) == 15 * 400 == 6000
    assert price_for(volume, 10) == 5000
    assert price_for(volume, 11) == 4400


def test_tier_flat_fees_apply_only_to_tiers_that_are_reached() -> None:
    tiers = (Tier(10, 500, 2000), Tier(None, 400, 1000))
    assert price_for(Pricing("tiered", tiers=tiers), 10) == 5000 + 2000
    assert price_for(Pricing("tiered", tiers=tiers), 15) == 5000 + 2000 + 2000 + 1000
    assert price_for(Pricing("volume", tiers=tiers), 15) == 6000 + 1000
    assert price_for(Pricing("volume", tiers=tiers), 3) == 1500 + 2000


def test_three_graduated_tiers() -> None:
    tiers = (Tier(5, 1000), Tier(20, 800), Tier(None, 500))
    assert price_for(Pricing("tiered", tiers=tiers), 25) == 5 * 1000 + 15 * 800 + 5 * 500
    assert price_for(Pricing("volume", tiers=tiers), 20) == 20 * 800


@pytest.mark.parametrize("quantity", [0, -1, True, 1.0])
def test_quantity_must_be_a_positive_integer(quantity: object) -> None:
    for pricing in (Pricing("flat", 1), Pricing("tiered", tiers=TIERS)):
        with pytest.raises(InvalidInput):
            price_for(pricing, quantity)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "build",
    [
        lambda: Pricing("metered", 100),
        lambda: Pricing("flat", -1),
        lambda: Pricing("per_unit", 100, TIERS),
        lambda: Pricing("tiered"),
        lambda: Pricing("volume", 100, TIERS),
        lambda: Pricing("tiered", tiers=(Tier(10, 500),)),
        lambda: Pricing("tiered", tiers=(Tier(10, 500), Tier(10, 400), Tier(None, 300))),
        lambda: Pricing("tiered", tiers=(Tier(10, 500), Tier(5, 400), Tier(None, 300))),
        lambda: Pricing("tiered", tiers=(Tier(None, 500), Tier(None, 400))),
        lambda: Tier(0, 500),
        lambda: Tier(10, -1),
        lambda: Tier(10, 500, -1),
        lambda: Pricing("flat", True),
    ],
)
def test_invalid_pricing_is_refused(build: object) -> None:
    with pytest.raises(InvalidPricing):
        build()  # type: ignore[operator]


def test_pricing_dict_round_trip_is_json_shaped() -> None:
    pricing = Pricing("tiered", tiers=[Tier(10, 500, 100), Tier(None, 400)])  # type: ignore[arg-type]
    data = pricing.to_dict()
    assert data == {
        "model": "tiered",
        "amount": 0,
        "tiers": [
            {"up_to": 10, "unit_amount": 500, "flat_amount": 100},
            {"up_to": None, "unit_amount": 400, "flat_amount": 0},
        ],
    }
    assert Pricing.from_dict(data) == pricing
    assert Pricing.from_dict(Pricing("flat", 900).to_dict()) == Pricing("flat", 900)
    with pytest.raises(InvalidPricing):
        Pricing.from_dict({"amount": 1})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10:5.00", Tier(10, 500)),
        ("inf:4.00", Tier(None, 400)),
        ("*:4", Tier(None, 400)),
        ("10:5.00:20.00", Tier(10, 500, 2000)),
    ],
)
def test_parse_tier_reads_bound_amount_and_optional_flat_fee(text: str, expected: Tier) -> None:
    assert parse_tier(text, "USD") == expected


def test_parse_tier_uses_the_currency_exponent() -> None:
    assert parse_tier("100:3", "JPY") == Tier(100, 3)
    with pytest.raises(InvalidAmount):
        parse_tier("100:3.5", "JPY")


@pytest.mark.parametrize("text", ["10", "ten:5.00", "0:5.00", "10:5:1:1", "-1:5.00", "10:abc"])
def test_parse_tier_refuses_garbage(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_tier(text, "USD")


def test_describe_gives_a_short_label() -> None:
    assert describe(Pricing("per_unit", 1000), 3, "USD") == "3 × USD 10.00"  # noqa: RUF001
    assert describe(Pricing("flat", 1000), 3, "USD") == "flat"
    assert describe(Pricing("tiered", tiers=TIERS), 3, "USD") == "tiered (3 units)"
    assert describe(Pricing("volume", tiers=TIERS), 1, "USD") == "volume (1 unit)"
