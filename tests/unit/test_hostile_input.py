"""Hostile but realistic input: every value has a range, and breaking it records nothing.

Each refusal is checked three ways: the named error, a message that names the field (never
the value), and an unchanged store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ledger_support import Book, T, flat

from domain import commands as c
from domain import limits
from domain.errors import CurrencyMismatch, InvalidInput, LedgerError
from domain.pricing import Pricing, price_for
from domain.subscription.mrr import mrr_of
from domain.subscription.status import Status

PER_SEAT = {"model": "per_unit", "amount": 1000, "tiers": []}
T0 = T(2025, 1, 1)


@pytest.fixture
def shop(book: Book) -> Book:
    book.plan("seat", T0, PER_SEAT)
    book.plan("flat", T0, flat(5000))
    book.customer("cus", T0)
    return book


def refused(book: Book, cls: type[c.Command], **fields: Any) -> LedgerError:
    """Build and run the command; it must be refused with nothing recorded."""
    head = book.head()
    with pytest.raises(LedgerError) as caught:
        book.run(cls, fields.pop("at", T(2025, 1, 2)), **fields)
    assert book.head() == head
    assert "\n" not in str(caught.value)
    return caught.value


# ---- ranges --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"pricing": flat(10**23)}, "a price must be from 0 to 10,000,000,000"),
        ({"pricing": {"model": "per_unit", "amount": -1, "tiers": []}}, "a price must be"),
        (
            {
                "pricing": {
                    "model": "tiered",
                    "amount": 0,
                    "tiers": [{"up_to": None, "unit_amount": 2**63, "flat_amount": 0}],
                }
            },
            "unit_amount must be from 0",
        ),
        (
            {
                "pricing": {
                    "model": "tiered",
                    "amount": 0,
                    "tiers": [{"up_to": 10**12, "unit_amount": 1, "flat_amount": 0}] * 1
                    + [{"up_to": None, "unit_amount": 1, "flat_amount": 0}],
                }
            },
            "upper bound (up_to) must be from 1 to 1,000,000",
        ),
        ({"interval": "day", "interval_count": 3661}, "from 1 to 3,660"),
        ({"interval": "year", "interval_count": 11}, "from 1 to 10"),
        ({"interval_count": 0}, "from 1 to 120"),
        ({"trial_days": -1}, "trial_days must be a whole number from 0 to 730"),
        ({"trial_days": 10**9}, "trial_days"),
        ({"name": "   "}, "name must not be blank"),
        ({"name": "x" * 201}, "at most 200 characters"),
        ({"features": ("ok", "bad\x1b[31m")}, "a feature must not contain control characters"),
        ({"plan_id": "a" * 201}, "plan_id must be at most 200 characters"),
        ({"plan_id": "p\x00"}, "plan_id must not contain control characters"),
        ({"plan_id": " "}, "plan_id is required"),
    ],
)
def test_a_plan_out_of_range_is_refused(shop: Book, fields: dict, words: str) -> None:
    command = {
        "plan_id": "new",
        "name": "New",
        "currency": "USD",
        "pricing": PER_SEAT,
        "interval": "month",
        **fields,
    }
    assert words in str(refused(shop, c.DefinePlan, **command))


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"quantity": 2**63 - 1}, "quantity must be a whole number from 1 to 1,000,000"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": -5}, "quantity"),
        ({"plan_id": "flat", "quantity": 4}, "plan 'flat' has a flat price: its quantity is 1"),
        ({"anchor_day": 31}, "anchor day"),
        ({"subscription_id": "s\u202eevil"}, "subscription_id must not contain control"),
        ({"at": T(2200, 1, 1)}, "between 1970-01-01 and 2199-12-31"),
    ],
)
def test_a_subscription_out_of_range_is_refused(shop: Book, fields: dict, words: str) -> None:
    command = {"customer_id": "cus", "plan_id": "seat", "subscription_id": "s1", **fields}
    assert words in str(refused(shop, c.Subscribe, **command))


def test_the_largest_accepted_inputs_stay_inside_64_bits() -> None:
    """What the ranges promise: the worst case of every derived amount fits a BIGINT."""
    tiers = [
        {"up_to": n, "unit_amount": limits.MAX_AMOUNT, "flat_amount": limits.MAX_AMOUNT}
        for n in range(1, limits.MAX_TIERS)
    ] + [{"up_to": None, "unit_amount": limits.MAX_AMOUNT, "flat_amount": limits.MAX_AMOUNT}]
    from domain.periods import Interval

    for pricing in (
        Pricing("per_unit", limits.MAX_AMOUNT),
        Pricing.from_dict({"model": "tiered", "amount": 0, "tiers": tiers}),
        Pricing.from_dict({"model": "volume", "amount": 0, "tiers": tiers}),
    ):
        period = price_for(pricing, limits.MAX_QUANTITY)
        mrr = mrr_of(
            status=Status.ACTIVE,
            pricing=pricing,
            quantity=limits.MAX_QUANTITY,
            interval=Interval("day", 1),
            currency="USD",
            coupon=None,
            discounted=False,
        )
        invoice = 4 * period  # recurring + proration charge + credit + 100% tax, at worst
        assert invoice < limits.MAX_INVOICE < limits.INT64_MAX
        assert 12 * mrr < limits.INT64_MAX  # ARR of the largest subscription


def test_the_largest_plan_subscribes_and_bills(shop: Book) -> None:
    shop.plan("max", T0, {"model": "per_unit", "amount": limits.MAX_AMOUNT, "tiers": []})
    shop.subscribe("big", "cus", "max", T(2025, 1, 2), quantity=limits.MAX_QUANTITY)
    shop.advance(T(2025, 3, 5))
    totals = [i["total"] for i in shop.invoices("big")]
    assert totals == [limits.MAX_AMOUNT * limits.MAX_QUANTITY] * 3
    assert shop.subscription("big")["mrr"] == limits.MAX_AMOUNT * limits.MAX_QUANTITY


# ---- a quantity always means something --------------------------------------------------------


def test_changing_to_a_flat_plan_without_a_quantity_makes_it_one(shop: Book) -> None:
    shop.subscribe("s", "cus", "seat", T(2025, 1, 2), quantity=4)
    shop.run(c.ChangePlan, T(2025, 1, 3), subscription_id="s", plan_id="flat")
    assert shop.subscription("s")["quantity"] == 1
    error = refused(shop, c.ChangePlan, subscription_id="s", plan_id="flat", quantity=3)
    assert "flat price" in str(error)


def test_a_quantity_of_zero_is_an_error_not_the_old_quantity(shop: Book) -> None:
    shop.subscribe("s", "cus", "seat", T(2025, 1, 2), quantity=4)
    error = refused(shop, c.ChangePlan, subscription_id="s", plan_id="seat", quantity=0)
    assert "quantity must be a whole number from 1" in str(error)
    assert shop.subscription("s")["quantity"] == 4


def test_options_that_would_be_ignored_are_errors(shop: Book) -> None:
    assert "nothing to update" in str(refused(shop, c.UpdateCustomer, customer_id="cus"))
    same = refused(shop, c.ChangePlanPrice, plan_id="seat", pricing=PER_SEAT)
    assert "current price: nothing to change" in str(same)
    kind = refused(shop, c.ChangePlanPrice, plan_id="flat", pricing=PER_SEAT)
    assert "a new price keeps it flat" in str(kind)
    gone = refused(shop, c.RegisterCustomer, customer_id="x", name="X", email="x@example.com",
                   payment_token="tok_visa", country="XX")  # fmt: skip
    assert "assigned ISO 3166-1 alpha-2 code" in str(gone)
    assert "actor is required" in str(refused(shop, c.RetirePlan, plan_id="seat", actor=" "))


# ---- payments ---------------------------------------------------------------------------------


def test_a_payment_in_another_currency_never_settles_an_invoice(shop: Book) -> None:
    shop.customer("bank", T0, token="tok_chargeDeclined")
    shop.subscribe("s", "bank", "seat", T(2025, 1, 2))
    (invoice,) = shop.invoices("s")
    assert invoice["status"] == "open"
    pay = {"subscription_id": "s", "invoice_number": invoice["number"], "amount": 1000}
    with pytest.raises(CurrencyMismatch, match="a GBP payment cannot settle it"):
        shop.run(c.RecordPayment, T(2025, 1, 3), currency="GBP", reference="r", **pay)
    with pytest.raises(InvalidInput, match="reference must not be blank"):
        shop.run(c.RecordPayment, T(2025, 1, 3), currency="USD", reference=" ", **pay)
    assert shop.invoices("s")[0]["status"] == "open"
    shop.run(c.RecordPayment, T(2025, 1, 3), currency="USD", reference="bank-1", **pay)
    assert shop.invoices("s")[0]["status"] == "paid"


def test_a_payment_without_a_currency_means_the_invoices(shop: Book) -> None:
    shop.customer("bank", T0, token="tok_chargeDeclined")
    shop.subscribe("s", "bank", "seat", T(2025, 1, 2))
    (invoice,) = shop.invoices("s")
    shop.run(
        c.RecordPayment,
        T(2025, 1, 3),
        subscription_id="s",
        invoice_number=invoice["number"],
        amount=1000,
        reference="bank-1",
    )
    assert shop.invoices("s")[0]["status"] == "paid"


# ---- card numbers, whatever their notation ------------------------------------------------------

NOTATIONS = [
    "4242.4242.4242.4242",
    "4242\t4242\t4242\t4242",
    "4242  4242  4242  4242",
    "4242/4242/4242/4242",
    "4242_4242_4242_4242",
    "\uff14\uff12\uff14\uff12" * 4,
]


@pytest.mark.parametrize("pan", NOTATIONS)
@pytest.mark.parametrize(
    ("cls", "field", "fields"),
    [
        (c.DefinePlan, "plan_id", {"name": "N", "currency": "USD", "pricing": PER_SEAT}),
        (c.DefinePlan, "name", {"plan_id": "p9", "currency": "USD", "pricing": PER_SEAT}),
        (
            c.DefinePlan,
            "features",
            {"plan_id": "p9", "name": "N", "currency": "USD", "pricing": PER_SEAT},
        ),
        (c.DefineCoupon, "code", {"percent_off_bp": 1000}),
        (c.RetirePlan, "actor", {"plan_id": "seat"}),
        (c.RetirePlan, "source", {"plan_id": "seat"}),
        (c.Cancel, "reason", {"subscription_id": "s"}),
        (
            c.RegisterCustomer,
            "preferences",
            {
                "customer_id": "c9",
                "name": "N",
                "email": "n@example.com",
                "payment_token": "tok_visa",
            },
        ),
    ],
)
def test_a_card_number_in_any_notation_is_refused_and_never_stored(
    shop: Book, tmp_path: Path, pan: str, cls: type[c.Command], field: str, fields: dict
) -> None:
    shop.subscribe("s", "cus", "seat", T(2025, 1, 2))
    value: Any = f"x {pan} y"
    if field == "features":
        value = ("ok", value)
    elif field == "preferences":
        value = {"note": value}
    error = refused(shop, cls, **fields, **{field: value})
    assert error.code == "card_number_refused"
    assert field in str(error)
    assert "4242" not in str(error) and "\uff14" not in str(error)
    for path in shop.config.data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"4242" * 2 not in data.replace(b".", b"").replace(b" ", b"")
            assert "\uff14\uff12".encode() not in data


def test_errors_never_quote_a_card_number(shop: Book) -> None:
    from domain.errors import InvalidInput

    error = InvalidInput("'4242 4242 4242 4242' is not a date")
    assert "4242 4242 4242" not in str(error)
    assert str(error).endswith("**** **** **** 4242' is not a date")
