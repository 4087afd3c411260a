"""Credit belongs to the customer, per currency: it survives a churn and pays the customer's
next invoice on any subscription, to the cent, through the real Ledger."""

from __future__ import annotations

import copy

import pytest
from ledger_support import Book, T, flat

from domain import commands as c
from domain.customer import Customer
from domain.errors import CustomerErased, InvalidAmount, LedgerError, UnknownCurrency
from domain.identity import customer_uuid
from projections import reports


@pytest.fixture
def usd(book: Book) -> Book:
    t = T(2024, 1, 1)
    book.plan("pro", t, flat(3000), name="Pro")
    book.plan("basic", t, flat(1000), name="Basic")
    book.plan("euro", t, flat(900), currency="EUR", name="Euro")
    book.customer("cus", t)
    return book


def customer_events(book: Book, customer_id: str) -> list[tuple]:
    """The customer's credit events, as (type, currency, amount, balance_after, why)."""
    out = []
    for e in book.ledger.history(customer_uuid(customer_id)):
        if type(e).__name__ == "CreditGranted":
            out.append(("CreditGranted", e.currency, e.amount, e.balance_after, e.source))
        elif type(e).__name__ == "CreditApplied":
            out.append(("CreditApplied", e.currency, e.amount, e.balance_after, e.invoice))
    return out


def credit_of(book: Book, customer_id: str) -> dict[str, int]:
    customer = book.ledger.get(Customer, customer_uuid(customer_id))
    assert customer is not None
    return dict(customer.credit)


def test_a_downgrades_credit_survives_the_churn_and_pays_the_next_invoice_elsewhere(
    usd: Book,
) -> None:
    usd.subscribe("s1", "cus", "pro", T(2024, 1, 1))
    usd.run(c.ChangePlan, T(2024, 1, 20), subscription_id="s1", plan_id="basic")
    # 12 of 31 days unused: 3000 x 12/31 = 1161.29 credited, 1000 x 12/31 = 387.10 charged
    down = usd.invoice("INV-000002")
    assert (down["total"], down["credit_applied"], down["amount_due"]) == (-774, 0, 0)
    assert credit_of(usd, "cus") == {"USD": 774}

    usd.run(c.Cancel, T(2024, 1, 21), subscription_id="s1", immediately=True)
    assert usd.subscription("s1")["status"] == "canceled"
    assert credit_of(usd, "cus") == {"USD": 774}  # the churn strands nothing
    assert reports.balance(usd.db, "cus") == {"USD": {"outstanding": 0, "credit": 774}}

    usd.subscribe("s2", "cus", "basic", T(2024, 1, 25))

    first = usd.invoice("INV-000003")
    assert first["subscription_id"] == "s2"
    assert (first["total"], first["credit_applied"], first["amount_due"]) == (1000, 774, 226)
    (invoiced,) = usd.events_of("s2", "Invoiced")
    assert (invoiced.customer_credit, invoiced.credit_balance_after) == (True, 0)
    assert customer_events(usd, "cus") == [
        ("CreditGranted", "USD", 774, 774, "proration"),
        ("CreditApplied", "USD", 774, 0, "INV-000003"),
    ]
    assert credit_of(usd, "cus") == {"USD": 0}
    assert reports.balance(usd.db, "cus")["USD"]["credit"] == 0
    # neither subscription holds credit of its own
    assert usd.subscription("s1")["credit_balance"] == usd.subscription("s2")["credit_balance"] == 0
    moves = reports.customer_credit(usd.db, "cus")
    assert [(m["kind"], m["amount"], m["balance_after"], m["reference"]) for m in moves] == [
        ("granted", 774, 774, "INV-000002"),
        ("applied", -774, 0, "INV-000003"),
    ]


def test_credit_is_per_currency(usd: Book) -> None:
    usd.run(
        c.GrantCredit, T(2024, 1, 2), customer_id="cus", currency="USD", amount=500, reason="sorry"
    )
    usd.subscribe("eu", "cus", "euro", T(2024, 1, 3))
    euro = usd.invoice("INV-000001")
    assert (euro["currency"], euro["credit_applied"], euro["amount_due"]) == ("EUR", 0, 900)
    usd.subscribe("us", "cus", "basic", T(2024, 1, 4))
    dollars = usd.invoice("INV-000002")
    assert (dollars["credit_applied"], dollars["amount_due"]) == (500, 500)
    assert credit_of(usd, "cus") == {"USD": 0}


def test_credit_is_spent_after_tax_and_over_several_invoices(usd: Book) -> None:
    usd.run(c.SetTaxRate, T(2024, 1, 1), country="GB", rate_ppm=200_000)
    usd.customer("brit", T(2024, 1, 1), country="GB")
    outcome = usd.run(
        c.GrantCredit,
        T(2024, 1, 2),
        customer_id="brit",
        currency="USD",
        amount=2000,
        reason="outage",
    )
    assert outcome["credit_balance"] == 2000
    usd.subscribe("a", "brit", "basic", T(2024, 1, 3))
    usd.subscribe("b", "brit", "basic", T(2024, 1, 4))
    # 1000 + 20% tax = 1200 each: the first spends 1200, the second the 800 left
    assert [(i["total"], i["credit_applied"], i["amount_due"]) for i in usd.invoices()] == [
        (1200, 1200, 0),
        (1200, 800, 400),
    ]
    assert customer_events(usd, "brit") == [
        ("CreditGranted", "USD", 2000, 2000, "grant"),
        ("CreditApplied", "USD", 1200, 800, "INV-000001"),
        ("CreditApplied", "USD", 800, 0, "INV-000002"),
    ]


def test_a_grant_out_of_range_or_for_an_erased_customer_records_nothing(usd: Book) -> None:
    grant = {"customer_id": "cus", "currency": "USD", "reason": "goodwill"}
    usd.run(c.GrantCredit, T(2024, 1, 2), **grant, amount=10**10)
    head = usd.head()
    for amount, error in [(0, InvalidAmount), (10**10 + 1, InvalidAmount), (-5, InvalidAmount)]:
        with pytest.raises(error):
            usd.run(c.GrantCredit, T(2024, 1, 3), **grant, amount=amount)
    with pytest.raises(UnknownCurrency):
        usd.run(c.GrantCredit, T(2024, 1, 3), **{**grant, "currency": "XYZ"}, amount=5)
    usd.run(c.EraseCustomer, T(2024, 1, 4), customer_id="cus")
    head = usd.head()
    with pytest.raises(CustomerErased):
        usd.run(c.GrantCredit, T(2024, 1, 5), **grant, amount=5)
    assert usd.head() == head
    assert credit_of(usd, "cus") == {"USD": 10**10}


def test_a_balance_never_passes_ten_to_the_seventeen(usd: Book) -> None:
    cached = usd.ledger.get(Customer, customer_uuid("cus"))
    customer = copy.deepcopy(cached)  # the cache's own object is never changed by hand
    customer.credit = {"USD": 10**17 - 5}  # as if granted over years: check_grant's arithmetic
    customer.check_grant("USD", 5)
    with pytest.raises(InvalidAmount, match="more than 100,000,000,000,000,000"):
        customer.check_grant("USD", 6)


def test_a_card_number_in_the_reason_is_refused(usd: Book) -> None:
    with pytest.raises(LedgerError) as err:
        usd.run(
            c.GrantCredit,
            T(2024, 1, 2),
            customer_id="cus",
            currency="USD",
            amount=5,
            reason="card 4242 4242 4242 4242",
        )
    assert "4242 4242 4242 4242" not in str(err.value)
    assert credit_of(usd, "cus") == {}
