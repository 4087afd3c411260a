"""Billing through the real Ledger: cycles, proration, prices, coupons and tax, to the cent."""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction

import pytest
from ledger_support import Book, T, flat, line_kinds, lines_of

from domain import commands as c
from domain.base import iso
from domain.identity import subscription_uuid
from projections import reports

PER_SEAT = {"model": "per_unit", "amount": 1200, "tiers": []}
TIERS = [
    {"up_to": 10, "unit_amount": 2000, "flat_amount": 0},
    {"up_to": 50, "unit_amount": 1500, "flat_amount": 0},
    {"up_to": None, "unit_amount": 1000, "flat_amount": 0},
]


def seconds(a: datetime, b: datetime) -> int:
    return int((b - a).total_seconds())


def share(amount: int, part: int, whole: int) -> int:
    """amount x part / whole, nearest cent, halves away from zero: written out independently."""
    exact = Fraction(amount * part, whole)
    sign = -1 if exact < 0 else 1
    return sign * int(abs(exact) + Fraction(1, 2))


def summary(invoice: dict) -> tuple:
    return (
        invoice["number"],
        invoice["reason"],
        invoice["issued_at"],
        invoice["period_start"],
        invoice["period_end"],
        invoice["total"],
    )


@pytest.fixture
def usd(book: Book) -> Book:
    """A catalog and a paying US customer, defined on 2024-01-01."""
    t = T(2024, 1, 1)
    book.plan("basic", t, flat(1000), name="Basic")
    book.customer("cus", t)
    return book


# ---- the cycle ---------------------------------------------------------------------------


def test_month_end_anchor_bills_on_the_last_day_of_each_month(usd: Book) -> None:
    outcome = usd.subscribe("sub", "cus", "basic", T(2024, 1, 31))
    assert outcome["status"] == "active"
    assert outcome["invoices"] == ["INV-000001"]

    usd.advance(T(2024, 4, 30))

    assert [summary(i) for i in usd.invoices("sub")] == [
        (
            "INV-000001",
            "subscription_create",
            "2024-01-31T00:00:00Z",
            "2024-01-31T00:00:00Z",
            "2024-02-29T00:00:00Z",
            1000,
        ),
        (
            "INV-000002",
            "renewal",
            "2024-02-29T00:00:00Z",
            "2024-02-29T00:00:00Z",
            "2024-03-31T00:00:00Z",
            1000,
        ),
        (
            "INV-000003",
            "renewal",
            "2024-03-31T00:00:00Z",
            "2024-03-31T00:00:00Z",
            "2024-04-30T00:00:00Z",
            1000,
        ),
        (
            "INV-000004",
            "renewal",
            "2024-04-30T00:00:00Z",
            "2024-04-30T00:00:00Z",
            "2024-05-31T00:00:00Z",
            1000,
        ),
    ]
    for invoice in usd.invoices("sub"):
        assert invoice["lines"] == [
            {
                "kind": "recurring",
                "description": "Basic (flat)",
                "amount": 1000,
                "period_start": invoice["period_start"],
                "period_end": invoice["period_end"],
            }
        ]
        assert (invoice["status"], invoice["amount_paid"]) == ("paid", 1000)
    assert usd.event_types("sub").count("Renewed") == 3


def test_each_renewal_is_charged_once_with_the_invoice_amount(usd: Book) -> None:
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 31))
    usd.advance(T(2024, 4, 30))
    paid = usd.events_of("sub", "PaymentSucceeded")
    assert [(e.number, e.amount, e.attempt) for e in paid] == [
        ("INV-000001", 1000, 1),
        ("INV-000002", 1000, 1),
        ("INV-000003", 1000, 1),
        ("INV-000004", 1000, 1),
    ]
    assert len({e.reference for e in paid}) == 4


def test_advancing_the_clock_again_to_the_same_time_bills_nothing_more(usd: Book) -> None:
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 31))
    usd.advance(T(2024, 4, 30))
    outcome = usd.advance(T(2024, 4, 30))
    assert (outcome["renewals"], outcome["invoices"]) == (0, 0)
    assert len(usd.invoices("sub")) == 4


def test_annual_plan_started_on_leap_day_renews_on_feb_28_then_back_on_feb_29(
    usd: Book,
) -> None:
    usd.plan("annual", T(2024, 1, 1), flat(12000), interval="year")
    usd.subscribe("sub", "cus", "annual", T(2024, 2, 29))
    usd.advance(T(2028, 3, 1))
    assert [(i["issued_at"], i["period_end"], i["total"]) for i in usd.invoices("sub")] == [
        ("2024-02-29T00:00:00Z", "2025-02-28T00:00:00Z", 12000),
        ("2025-02-28T00:00:00Z", "2026-02-28T00:00:00Z", 12000),
        ("2026-02-28T00:00:00Z", "2027-02-28T00:00:00Z", 12000),
        ("2027-02-28T00:00:00Z", "2028-02-29T00:00:00Z", 12000),
        ("2028-02-29T00:00:00Z", "2029-02-28T00:00:00Z", 12000),
    ]


def test_annual_plan_sends_one_renewal_reminder_thirty_days_before(usd: Book) -> None:
    usd.plan("annual", T(2024, 1, 1), flat(12000), interval="year")
    usd.subscribe("sub", "cus", "annual", T(2024, 2, 29))
    usd.advance(T(2025, 1, 28, 23, 59, 59))
    assert usd.events_of("sub", "RenewalReminderIssued") == []
    usd.advance(T(2025, 1, 29))
    (reminder,) = usd.events_of("sub", "RenewalReminderIssued")
    assert reminder.timestamp == T(2025, 1, 29)  # 30 days before Feb 28
    assert reminder.renews_at == T(2025, 2, 28)
    assert reminder.expected_amount == 12000
    usd.advance(T(2025, 2, 27))
    assert len(usd.events_of("sub", "RenewalReminderIssued")) == 1  # once per renewal


def test_monthly_plan_sends_its_renewal_reminder_seven_days_before(usd: Book) -> None:
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1))
    usd.advance(T(2024, 3, 1))
    reminders = usd.events_of("sub", "RenewalReminderIssued")
    assert [(e.timestamp, e.renews_at, e.expected_amount) for e in reminders] == [
        (T(2024, 1, 25), T(2024, 2, 1), 1000),
        (T(2024, 2, 23), T(2024, 3, 1), 1000),
    ]


@pytest.mark.parametrize(
    "road",
    ["paused, resumed", "set to cancel, reactivated", "trial set to cancel, reactivated"],
)
def test_a_reminder_missed_while_it_could_not_fall_due_is_sent_when_billing_takes_up_again(
    usd: Book, road: str
) -> None:
    """Paused, or set to cancel, past the reminder's time, then back within the paid period
    (or the trial): the reminder is dated at the comeback, never before the subscription's
    last change, which it would refuse; dated earlier, no command of the book went through
    again (found by `simulate --customers 2000`, refused from July on)."""
    usd.plan("trial", T(2024, 1, 1), flat(1000), trial_days=14)
    if road == "paused, resumed":
        usd.subscribe("sub", "cus", "basic", T(2024, 1, 1))  # reminder due on Jan 25
        usd.run(c.Pause, T(2024, 1, 10), subscription_id="sub")
        back, event, ends = T(2024, 1, 27), c.Resume, T(2024, 2, 1)
    elif road == "set to cancel, reactivated":
        usd.subscribe("sub", "cus", "basic", T(2024, 1, 1))
        usd.run(c.Cancel, T(2024, 1, 10), subscription_id="sub", immediately=False, reason="x")
        back, event, ends = T(2024, 1, 27), c.Reactivate, T(2024, 2, 1)
    else:
        usd.subscribe("sub", "cus", "trial", T(2024, 1, 1))  # notice due on Jan 12
        usd.run(c.Cancel, T(2024, 1, 5), subscription_id="sub", immediately=False, reason="x")
        back, event, ends = T(2024, 1, 13), c.Reactivate, T(2024, 1, 15)
    usd.run(event, back, subscription_id="sub")
    done = usd.advance(back + (ends - back) / 2)
    assert done["reminders"] == 1
    name = "TrialEndingSoon" if road.startswith("trial") else "RenewalReminderIssued"
    (reminder,) = usd.events_of("sub", name)
    assert reminder.timestamp == back
    assert usd.customer("cus2", ends)["customer_id"] == "cus2"  # the book goes on
    assert usd.subscription("sub")["current_period_start"] == iso(ends)  # renewed on time


def test_the_schedule_asks_for_a_reminded_subscription_again_only_at_its_renewal(
    usd: Book,
) -> None:
    """The due-work hint names a subscription for its reminder until the reminder is sent
    for the current period, then only when the renewal falls due; a read DB from before it
    knew of reminders (no `reminded_for`) over-asks, which is safe."""
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1))  # reminder Jan 25, renewal Feb 1
    sub = subscription_uuid("sub")
    hint = usd.ledger.schedule.due_subscriptions
    assert sub not in hint(T(2024, 1, 24))
    assert sub in hint(T(2024, 1, 25))
    usd.advance(T(2024, 1, 26))
    assert usd.db.query("SELECT reminded_for FROM subscriptions") == [
        {"reminded_for": "2024-02-01T00:00:00Z"}
    ]
    assert sub not in hint(T(2024, 1, 31, 23, 59, 59))
    assert sub in hint(T(2024, 2, 1))

    usd.db.execute("DROP INDEX subscriptions_unreminded")  # an older read DB: neither the
    usd.db.execute("ALTER TABLE subscriptions DROP COLUMN reminded_for")  # column nor its index
    (billing,) = [p for p in usd.rt.projections if p.name == "billing"]
    billing.create(usd.db)
    assert usd.db.query("SELECT name FROM sqlite_master WHERE name = 'subscriptions_unreminded'")
    assert sub in hint(T(2024, 1, 26))
    assert usd.advance(T(2024, 2, 2))["reminders"] == 0  # the aggregate knows: sent once
    assert len(usd.events_of("sub", "RenewalReminderIssued")) == 1
    assert sub not in hint(T(2024, 2, 2))  # renewed: nothing due before its next reminder


# ---- trials --------------------------------------------------------------------------------


def test_trial_is_not_invoiced_until_it_ends_then_billed_from_its_end(usd: Book) -> None:
    usd.plan("trial", T(2024, 1, 1), flat(1000), trial_days=14, name="Trial")
    outcome = usd.subscribe("sub", "cus", "trial", T(2024, 1, 10))
    assert (outcome["status"], outcome["invoices"]) == ("trialing", [])
    sub = usd.subscription("sub")
    assert (sub["status"], sub["mrr"], sub["trial_end"]) == ("trialing", 0, "2024-01-24T00:00:00Z")

    usd.advance(T(2024, 1, 23, 23, 59, 59))
    assert usd.invoices("sub") == []

    outcome = usd.advance(T(2024, 1, 24))
    assert outcome["trials_converted"] == 1
    (invoice,) = usd.invoices("sub")
    assert summary(invoice) == (
        "INV-000001",
        "trial_conversion",
        "2024-01-24T00:00:00Z",
        "2024-01-24T00:00:00Z",
        "2024-02-24T00:00:00Z",
        1000,
    )
    sub = usd.subscription("sub")
    assert (sub["status"], sub["mrr"]) == ("active", 1000)
    assert usd.event_types("sub") == [
        "Subscribed",
        "TrialEndingSoon",  # 3 days before the trial ends
        "TrialConverted",
        "Invoiced",
        "ChargeRequested",  # the charge is asked for, then made after commit
        "PaymentSucceeded",
    ]
    usd.advance(T(2024, 2, 24))
    assert [i["period_start"] for i in usd.invoices("sub")] == [
        "2024-01-24T00:00:00Z",
        "2024-02-24T00:00:00Z",
    ]


def test_trial_cancelled_at_period_end_churns_at_trial_end_without_an_invoice(usd: Book) -> None:
    usd.plan("trial", T(2024, 1, 1), flat(1000), trial_days=14)
    usd.subscribe("sub", "cus", "trial", T(2024, 1, 10))
    outcome = usd.run(c.Cancel, T(2024, 1, 12), subscription_id="sub")
    assert outcome["cancel_at"] == "2024-01-24T00:00:00Z"

    usd.advance(T(2024, 3, 1))

    assert usd.invoices("sub") == []
    assert usd.event_types("sub") == ["Subscribed", "CancellationScheduled", "Churned"]
    (churned,) = usd.events_of("sub", "Churned")
    assert (churned.timestamp, churned.kind, churned.written_off) == (
        T(2024, 1, 24),
        "voluntary",
        [],
    )
    sub = usd.subscription("sub")
    assert (sub["status"], sub["canceled_at"], sub["mrr"]) == (
        "canceled",
        "2024-01-24T00:00:00Z",
        0,
    )


# ---- proration -----------------------------------------------------------------------------


def test_upgrade_exactly_half_way_credits_and_charges_half_rounded_half_up(usd: Book) -> None:
    usd.plan("small", T(2024, 1, 1), flat(1999), name="Small")
    usd.plan("big", T(2024, 1, 1), flat(4999), name="Big")
    usd.subscribe("sub", "cus", "small", T(2024, 1, 1))
    start, end = T(2024, 1, 1), T(2024, 2, 1)
    half_way = T(2024, 1, 16, 12)
    assert seconds(start, half_way) * 2 == seconds(start, end)

    outcome = usd.run(c.ChangePlan, half_way, subscription_id="sub", plan_id="big")

    assert outcome["invoices"] == ["INV-000002"]
    invoice = usd.invoice("INV-000002")
    # 1999 / 2 = 999.5 and 4999 / 2 = 2499.5: both round away from zero
    assert invoice["reason"] == "proration"
    assert invoice["lines"] == [
        {
            "kind": "proration_credit",
            "description": "Unused time on Small (flat) after 2024-01-16",
            "amount": -1000,
            "period_start": "2024-01-16T12:00:00Z",
            "period_end": "2024-02-01T00:00:00Z",
        },
        {
            "kind": "proration_charge",
            "description": "Remaining time on Big (flat) after 2024-01-16",
            "amount": 2500,
            "period_start": "2024-01-16T12:00:00Z",
            "period_end": "2024-02-01T00:00:00Z",
        },
    ]
    assert (invoice["subtotal"], invoice["tax"], invoice["total"]) == (1500, 0, 1500)
    assert (invoice["amount_due"], invoice["amount_paid"], invoice["status"]) == (
        1500,
        1500,
        "paid",
    )
    (changed,) = usd.events_of("sub", "PlanChanged")
    assert (changed.from_plan_id, changed.plan_id, changed.mrr) == ("small", "big", 4999)
    assert (changed.period_start, changed.period_end) == (start, end)
    sub = usd.subscription("sub")
    assert (sub["plan_id"], sub["mrr"], sub["current_period_end"]) == (
        "big",
        4999,
        "2024-02-01T00:00:00Z",
    )
    usd.advance(T(2024, 2, 1))
    assert usd.invoices("sub")[-1]["total"] == 4999


def test_upgrade_prorates_to_the_second(usd: Book) -> None:
    usd.plan("pro", T(2024, 1, 1), flat(3000), name="Pro")
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1))
    at = T(2024, 1, 20, 7, 13, 29)
    usd.run(c.ChangePlan, at, subscription_id="sub", plan_id="pro")

    unused, whole = seconds(at, T(2024, 2, 1)), seconds(T(2024, 1, 1), T(2024, 2, 1))
    invoice = usd.invoice("INV-000002")
    credit, charge = lines_of(invoice, "proration_credit"), lines_of(invoice, "proration_charge")
    assert [line["amount"] for line in credit] == [-share(1000, unused, whole)]
    assert [line["amount"] for line in charge] == [share(3000, unused, whole)]
    # 1_010_791 of 2_678_400 seconds unused: 377.39 and 1132.17
    assert unused == 1_010_791
    assert [line["amount"] for line in credit] == [-377]
    assert [line["amount"] for line in charge] == [1132]
    assert invoice["amount_due"] == 1132 - 377


def test_downgrade_banks_a_credit_that_the_next_renewal_spends(usd: Book) -> None:
    usd.plan("pro", T(2024, 1, 1), flat(3000), name="Pro")
    usd.subscribe("sub", "cus", "pro", T(2024, 1, 1))
    usd.run(c.ChangePlan, T(2024, 1, 20), subscription_id="sub", plan_id="basic")

    down = usd.invoice("INV-000002")
    # 12 of 31 days unused: 3000 x 12/31 = 1161.29, 1000 x 12/31 = 387.10
    assert [(line["kind"], line["amount"]) for line in down["lines"]] == [
        ("proration_credit", -1161),
        ("proration_charge", 387),
    ]
    assert (down["subtotal"], down["total"], down["credit_applied"], down["amount_due"]) == (
        -774,
        -774,
        0,
        0,
    )
    assert down["status"] == "paid"  # nothing to collect
    assert usd.events_of("sub", "PaymentSucceeded")[-1].number == "INV-000001"
    # the credit is the customer's: the subscription's own column stays 0
    assert usd.subscription("sub")["credit_balance"] == 0
    assert reports.balance(usd.db, "cus") == {"USD": {"outstanding": 0, "credit": 774}}

    usd.advance(T(2024, 2, 1))

    renewal = usd.invoice("INV-000003")
    assert renewal["reason"] == "renewal"
    assert (renewal["total"], renewal["credit_applied"], renewal["amount_due"]) == (1000, 774, 226)
    assert renewal["amount_paid"] == 226
    assert usd.events_of("sub", "PaymentSucceeded")[-1].amount == 226
    assert reports.balance(usd.db, "cus")["USD"]["credit"] == 0

    usd.advance(T(2024, 3, 1))
    last = usd.invoice("INV-000004")
    assert (last["credit_applied"], last["amount_due"]) == (0, 1000)


def test_credit_larger_than_a_renewal_is_spent_over_several_renewals(usd: Book) -> None:
    usd.plan("max", T(2024, 1, 1), flat(5000), name="Max")
    usd.plan("mini", T(2024, 1, 1), flat(100), name="Mini")
    usd.subscribe("sub", "cus", "max", T(2024, 1, 1))
    usd.run(c.ChangePlan, T(2024, 1, 2), subscription_id="sub", plan_id="mini")
    # 30 of 31 days unused: -4839 + 97 = -4742 banked
    assert usd.invoice("INV-000002")["total"] == -4742
    usd.advance(T(2024, 3, 1))
    assert [(i["credit_applied"], i["amount_due"]) for i in usd.invoices("sub")[2:]] == [
        (100, 0),
        (100, 0),
    ]
    assert reports.balance(usd.db, "cus")["USD"]["credit"] == 4542  # the customer's


def test_interval_change_monthly_to_annual_starts_a_new_cycle_now(usd: Book) -> None:
    usd.plan("annual", T(2024, 1, 1), flat(12000), interval="year", name="Annual")
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1))
    usd.advance(T(2024, 2, 1))

    usd.run(c.ChangePlan, T(2024, 2, 10), subscription_id="sub", plan_id="annual")

    invoice = usd.invoice("INV-000003")
    assert invoice["reason"] == "plan_change"
    # Feb 2024 has 29 days; 20 of them are unused: 1000 x 20/29 = 689.66
    assert invoice["lines"] == [
        {
            "kind": "proration_credit",
            "description": "Unused time on Basic (flat) after 2024-02-10",
            "amount": -690,
            "period_start": "2024-02-10T00:00:00Z",
            "period_end": "2024-03-01T00:00:00Z",
        },
        {
            "kind": "recurring",
            "description": "Annual (flat)",
            "amount": 12000,
            "period_start": "2024-02-10T00:00:00Z",
            "period_end": "2025-02-10T00:00:00Z",
        },
    ]
    assert (invoice["total"], invoice["amount_due"]) == (11310, 11310)
    sub = usd.subscription("sub")
    assert (sub["current_period_start"], sub["current_period_end"], sub["mrr"]) == (
        "2024-02-10T00:00:00Z",
        "2025-02-10T00:00:00Z",
        1000,
    )
    usd.advance(T(2025, 2, 9))
    assert len(usd.invoices("sub")) == 3  # no monthly renewal any more
    usd.advance(T(2025, 2, 10))
    assert summary(usd.invoices("sub")[-1])[1:] == (
        "renewal",
        "2025-02-10T00:00:00Z",
        "2025-02-10T00:00:00Z",
        "2026-02-10T00:00:00Z",
        12000,
    )


def test_quantity_change_on_a_per_seat_plan_prorates_the_extra_seats(usd: Book) -> None:
    usd.plan("seat", T(2024, 1, 1), PER_SEAT, name="Seat")
    usd.subscribe("sub", "cus", "seat", T(2024, 1, 1), quantity=3)
    assert usd.invoice("INV-000001")["lines"][0]["description"] == "Seat (3 × USD 12.00)"  # noqa: RUF001
    assert usd.invoice("INV-000001")["total"] == 3600

    outcome = usd.run(
        c.ChangePlan, T(2024, 1, 16, 12), subscription_id="sub", plan_id="seat", quantity=5
    )

    assert outcome["quantity"] == 5
    invoice = usd.invoice("INV-000002")
    assert [(line["kind"], line["amount"]) for line in invoice["lines"]] == [
        ("proration_credit", -1800),
        ("proration_charge", 3000),
    ]
    assert invoice["amount_due"] == 1200
    (changed,) = usd.events_of("sub", "QuantityChanged")
    assert (changed.quantity, changed.mrr) == (5, 6000)
    assert usd.events_of("sub", "PlanChanged") == []
    sub = usd.subscription("sub")
    assert (sub["quantity"], sub["mrr"]) == (5, 6000)
    usd.advance(T(2024, 2, 1))
    assert usd.invoice("INV-000003")["total"] == 6000


def test_same_plan_and_quantity_is_refused(usd: Book) -> None:
    from domain.errors import InvalidInput

    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1))
    with pytest.raises(InvalidInput):
        usd.run(c.ChangePlan, T(2024, 1, 5), subscription_id="sub", plan_id="basic")


@pytest.mark.parametrize(
    ("model", "quantity", "amount"),
    [
        ("tiered", 10, 10 * 2000),
        ("tiered", 11, 10 * 2000 + 1500),
        ("tiered", 60, 10 * 2000 + 40 * 1500 + 10 * 1000),
        ("volume", 10, 10 * 2000),
        ("volume", 11, 11 * 1500),
        ("volume", 60, 60 * 1000),
    ],
)
def test_tiered_and_volume_plans_bill_their_tier_arithmetic(
    usd: Book, model: str, quantity: int, amount: int
) -> None:
    usd.plan("tiers", T(2024, 1, 1), {"model": model, "amount": 0, "tiers": TIERS})
    usd.subscribe("sub", "cus", "tiers", T(2024, 1, 1), quantity=quantity)
    (invoice,) = usd.invoices("sub")
    assert invoice["total"] == amount
    assert invoice["lines"][0]["description"] == f"Tiers ({model} ({quantity} units))"
    assert usd.subscription("sub")["mrr"] == amount


# ---- coupons -------------------------------------------------------------------------------


def test_repeating_percent_coupon_discounts_three_invoices_then_mrr_rises(usd: Book) -> None:
    usd.run(
        c.DefineCoupon,
        T(2024, 1, 1),
        code="HALF3",
        percent_off_bp=5000,
        duration="repeating",
        periods=3,
    )
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1), coupon="HALF3")
    assert usd.subscription("sub")["mrr"] == 500

    usd.advance(T(2024, 5, 1))

    invoices = usd.invoices("sub")
    assert [(line_kinds(i), i["total"]) for i in invoices] == [
        (["recurring", "discount"], 500),
        (["recurring", "discount"], 500),
        (["recurring", "discount"], 500),
        (["recurring"], 1000),
        (["recurring"], 1000),
    ]
    assert lines_of(invoices[0], "discount")[0]["description"] == "Coupon HALF3"
    assert [e.mrr for e in usd.events_of("sub", "Renewed")] == [500, 500, 1000, 1000]
    assert usd.subscription("sub")["mrr"] == 1000
    moves = usd.db.query(
        "SELECT at, kind, delta FROM mrr_movements WHERE subscription_id = 'sub' ORDER BY at"
    )
    assert moves == [
        {"at": "2024-01-01T00:00:00Z", "kind": "new", "delta": 500},
        {"at": "2024-04-01T00:00:00Z", "kind": "expansion", "delta": 500},
    ]


def test_once_amount_coupon_discounts_the_first_invoice_only(usd: Book) -> None:
    usd.run(
        c.DefineCoupon, T(2024, 1, 1), code="FIVE", amount_off=500, currency="USD", duration="once"
    )
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1), coupon="FIVE")
    usd.advance(T(2024, 3, 1))
    invoices = usd.invoices("sub")
    assert [[(ln["kind"], ln["amount"]) for ln in i["lines"]] for i in invoices] == [
        [("recurring", 1000), ("discount", -500)],
        [("recurring", 1000)],
        [("recurring", 1000)],
    ]
    assert [i["amount_due"] for i in invoices] == [500, 1000, 1000]
    # a one-off discount is not recurring revenue lost
    assert usd.subscription("sub")["mrr"] == 1000


def test_amount_coupon_in_another_currency_is_refused(usd: Book) -> None:
    from domain.errors import InvalidInput

    usd.run(c.DefineCoupon, T(2024, 1, 1), code="EUR5", amount_off=500, currency="EUR")
    with pytest.raises(InvalidInput):
        usd.subscribe("sub", "cus", "basic", T(2024, 1, 1), coupon="EUR5")
    assert usd.invoices() == []


# ---- tax -----------------------------------------------------------------------------------


def test_tax_is_twenty_percent_of_the_subtotal_for_gb_and_nothing_for_us(usd: Book) -> None:
    usd.run(c.SetTaxRate, T(2024, 1, 1), country="GB", rate_ppm=200_000)
    usd.customer("brit", T(2024, 1, 1), country="GB")
    usd.subscribe("uk", "brit", "basic", T(2024, 1, 1))
    usd.subscribe("us", "cus", "basic", T(2024, 1, 1))

    (uk,) = usd.invoices("uk")
    assert (uk["subtotal"], uk["tax"], uk["total"], uk["amount_due"]) == (1000, 200, 1200, 1200)
    assert uk["lines"][-1] == {
        "kind": "tax",
        "description": "Tax 20% (GB)",
        "amount": 200,
        "period_start": None,
        "period_end": None,
    }
    (us,) = usd.invoices("us")
    assert (us["subtotal"], us["tax"], us["total"]) == (1000, 0, 1000)
    assert "tax" not in line_kinds(us)


def test_tax_applies_after_the_discount(usd: Book) -> None:
    usd.run(c.SetTaxRate, T(2024, 1, 1), country="GB", rate_ppm=200_000)
    usd.run(c.DefineCoupon, T(2024, 1, 1), code="THIRD", percent_off_bp=3333, duration="forever")
    usd.customer("brit", T(2024, 1, 1), country="GB")
    usd.subscribe("uk", "brit", "basic", T(2024, 1, 1), coupon="THIRD")
    (uk,) = usd.invoices("uk")
    # discount 1000 x 33.33% = 333.3 -> 333; tax 20% of 667 = 133.4 -> 133
    assert [(ln["kind"], ln["amount"]) for ln in uk["lines"]] == [
        ("recurring", 1000),
        ("discount", -333),
        ("tax", 133),
    ]
    assert (uk["subtotal"], uk["tax"], uk["total"]) == (667, 133, 800)
    assert usd.subscription("uk")["mrr"] == 667  # a forever coupon lowers MRR (before tax)


def test_a_tax_rate_change_applies_to_later_invoices_only(usd: Book) -> None:
    usd.run(c.SetTaxRate, T(2024, 1, 1), country="GB", rate_ppm=200_000)
    usd.customer("brit", T(2024, 1, 1), country="GB")
    usd.subscribe("uk", "brit", "basic", T(2024, 1, 1))
    usd.run(c.SetTaxRate, T(2024, 1, 15), country="GB", rate_ppm=175_000)
    usd.advance(T(2024, 2, 1))
    assert [i["tax"] for i in usd.invoices("uk")] == [200, 175]


# ---- calendar billing (anchor day) ---------------------------------------------------------


def test_anchor_day_bills_a_prorated_stub_then_whole_months_on_that_day(usd: Book) -> None:
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 15), anchor_day=1)
    usd.advance(T(2024, 3, 1))
    # Jan 15 - Feb 1 is 17 of January's 31 days: 1000 x 17/31 = 548.39
    assert [(i["period_start"], i["period_end"], i["total"]) for i in usd.invoices("sub")] == [
        ("2024-01-15T00:00:00Z", "2024-02-01T00:00:00Z", share(1000, 17, 31)),
        ("2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z", 1000),
        ("2024-03-01T00:00:00Z", "2024-04-01T00:00:00Z", 1000),
    ]
    assert usd.invoices("sub")[0]["total"] == 548
    assert usd.subscription("sub")["mrr"] == 1000


def test_anchor_day_on_an_annual_plan_prorates_the_stub_over_the_year(usd: Book) -> None:
    usd.plan("annual", T(2024, 1, 1), flat(12000), interval="year")
    usd.subscribe("sub", "cus", "annual", T(2024, 1, 15), anchor_day=1)
    usd.advance(T(2024, 2, 1))
    # the stub is 17 days of the year Feb 1 2023 - Feb 1 2024 (365 days)
    assert [(i["period_end"], i["total"]) for i in usd.invoices("sub")] == [
        ("2024-02-01T00:00:00Z", share(12000, 17, 365)),
        ("2025-02-01T00:00:00Z", 12000),
    ]


def test_reminder_lead_times_are_configured_and_a_short_plan_gets_none(tmp_path) -> None:
    book = Book.embedded(tmp_path / "remind", reminder_days=3, reminder_days_annual=10)
    try:
        book.plan("basic", T(2024, 1, 1))
        book.plan("weekly", T(2024, 1, 1), interval="week")  # a week is twice 3 days and more
        book.plan("daily", T(2024, 1, 1), interval="day", interval_count=5)  # 5 < 6: none
        book.plan("annual", T(2024, 1, 1), flat(12000), interval="year")
        book.customer("cus", T(2024, 1, 1))
        for sub, plan in (("m", "basic"), ("w", "weekly"), ("d", "daily"), ("y", "annual")):
            book.subscribe(sub, "cus", plan, T(2024, 1, 1))
        book.advance(T(2024, 1, 15))
        reminded = {
            sub: [(e.timestamp, e.renews_at) for e in book.events_of(sub, "RenewalReminderIssued")]
            for sub in ("m", "w", "d")
        }
        assert reminded == {
            "m": [],  # not yet: 3 days before Feb 1
            "w": [(T(2024, 1, 5), T(2024, 1, 8)), (T(2024, 1, 12), T(2024, 1, 15))],
            "d": [],  # never
        }
        book.advance(T(2025, 1, 1))
        (monthly, *_) = book.events_of("m", "RenewalReminderIssued")
        assert (monthly.timestamp, monthly.renews_at) == (T(2024, 1, 29), T(2024, 2, 1))
        assert book.events_of("d", "RenewalReminderIssued") == []
        yearly = book.events_of("y", "RenewalReminderIssued")
        assert [(e.timestamp, e.renews_at) for e in yearly] == [(T(2024, 12, 22), T(2025, 1, 1))]
    finally:
        book.close()
