"""A subscription's life through the real Ledger: dunning, cancellation, reactivation,
pauses, price changes and retired plans."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest
from ledger_support import Book, T, flat

from domain import commands as c
from domain.errors import InvalidTransition, LedgerError, PlanRetired
from projections import reports


@pytest.fixture
def usd(book: Book) -> Book:
    t = T(2024, 1, 1)
    book.plan("basic", t, flat(1000), name="Basic")
    book.customer("cus", t)
    book.customer("declined", t, token="tok_chargeDeclined")
    book.customer("poor", t, token="tok_chargeDeclinedInsufficientFunds")
    return book


# ---- dunning -------------------------------------------------------------------------------


def test_declined_card_is_retried_1_3_5_7_days_after_the_first_failure_then_churns(
    usd: Book,
) -> None:
    first = T(2024, 1, 10, 8, 30)
    outcome = usd.subscribe("sub", "declined", "basic", first)
    # the command records the charge's request; the card is charged right after its commit
    assert (outcome["status"], outcome["duplicate"]) == ("active", False)
    sub = usd.subscription("sub")
    assert (sub["status"], sub["mrr"], sub["open_invoices"]) == ("past_due", 1000, ["INV-000001"])
    assert sub["next_retry_at"] == "2024-01-11T08:30:00Z"

    usd.advance(T(2024, 1, 16))
    assert usd.subscription("sub")["status"] == "past_due"
    usd.advance(T(2024, 2, 1))

    failures = usd.events_of("sub", "PaymentFailed")
    assert [(e.timestamp, e.attempt, e.reason, e.next_retry_at) for e in failures] == [
        (first, 1, "card_declined", first + timedelta(days=1)),
        (first + timedelta(days=1), 2, "card_declined", first + timedelta(days=3)),
        (first + timedelta(days=3), 3, "card_declined", first + timedelta(days=5)),
        (first + timedelta(days=5), 4, "card_declined", first + timedelta(days=7)),
        (first + timedelta(days=7), 5, "card_declined", None),
    ]
    assert all(e.amount == 1000 and e.number == "INV-000001" for e in failures)
    (churned,) = usd.events_of("sub", "Churned")
    assert (churned.timestamp, churned.kind, churned.reason, churned.written_off) == (
        first + timedelta(days=7),
        "involuntary",
        "payment_failed:card_declined",
        ["INV-000001"],
    )
    assert usd.event_types("sub")[-1] == "Churned"
    sub = usd.subscription("sub")
    assert (sub["status"], sub["mrr"], sub["churn_kind"], sub["open_invoices"]) == (
        "canceled",
        0,
        "involuntary",
        [],
    )
    (invoice,) = usd.invoices("sub")  # no renewal invoice after the churn
    assert (invoice["status"], invoice["amount_paid"], invoice["attempts"]) == (
        "uncollectible",
        0,
        5,
    )
    payments = usd.db.query(
        "SELECT outcome, attempt, at FROM payments WHERE subscription_id = 'sub' ORDER BY at"
    )
    assert [(p["outcome"], p["attempt"]) for p in payments] == [("failed", n) for n in range(1, 6)]
    revenue = reports.revenue(usd.db, T(2024, 1, 1), T(2024, 3, 1))["USD"]
    assert (revenue["billed"], revenue["collected"], revenue["written_off"]) == (1000, 0, 1000)


def test_insufficient_funds_reason_is_carried_to_failures_payments_and_churn(usd: Book) -> None:
    usd.subscribe("sub", "poor", "basic", T(2024, 1, 1))
    usd.advance(T(2024, 1, 9))
    reasons = {e.reason for e in usd.events_of("sub", "PaymentFailed")}
    assert reasons == {"insufficient_funds"}
    assert usd.subscription("sub")["churn_reason"] == "payment_failed:insufficient_funds"
    rows = usd.db.query("SELECT DISTINCT reason FROM payments WHERE subscription_id = 'sub'")
    assert rows == [{"reason": "insufficient_funds"}]


def test_new_token_during_dunning_makes_the_next_retry_succeed(usd: Book) -> None:
    usd.subscribe("sub", "declined", "basic", T(2024, 1, 1))
    usd.advance(T(2024, 1, 2))  # retry 1 fails
    usd.run(c.UpdateCustomer, T(2024, 1, 2, 12), customer_id="declined", payment_token="tok_visa")
    assert usd.subscription("sub")["status"] == "past_due"

    outcome = usd.advance(T(2024, 1, 4))

    assert outcome["retries"] == 1
    assert usd.event_types("sub")[-6:] == [  # each charge asked for, then its outcome
        "ChargeRequested",
        "PaymentFailed",
        "ChargeRequested",
        "PaymentFailed",
        "ChargeRequested",
        "PaymentSucceeded",
    ]
    paid = usd.events_of("sub", "PaymentSucceeded")[-1]
    assert (paid.timestamp, paid.attempt, paid.amount, paid.status) == (
        T(2024, 1, 4),
        3,
        1000,
        "active",
    )
    sub = usd.subscription("sub")
    assert (sub["status"], sub["next_retry_at"], sub["open_invoices"]) == ("active", None, [])
    (invoice,) = usd.invoices("sub")
    assert (invoice["status"], invoice["amount_paid"], invoice["attempts"]) == ("paid", 1000, 3)
    usd.advance(T(2024, 3, 1))
    assert usd.events_of("sub", "Churned") == []
    assert [i["status"] for i in usd.invoices("sub")] == ["paid", "paid", "paid"]


def test_payment_recorded_outside_the_gateway_settles_the_invoice(usd: Book) -> None:
    usd.subscribe("sub", "declined", "basic", T(2024, 1, 1))
    usd.run(
        c.RecordPayment,
        T(2024, 1, 1, 12),
        subscription_id="sub",
        invoice_number="INV-000001",
        amount=1000,
        reference="bank-transfer-17",
    )
    assert usd.subscription("sub")["status"] == "active"
    assert usd.invoice("INV-000001")["status"] == "paid"
    usd.advance(T(2024, 1, 20))
    assert len(usd.events_of("sub", "PaymentFailed")) == 1  # no retry of a paid invoice


def test_partial_payment_is_refused(usd: Book) -> None:
    from domain.errors import InvalidInput

    usd.subscribe("sub", "declined", "basic", T(2024, 1, 1))
    with pytest.raises(InvalidInput):
        usd.run(
            c.RecordPayment,
            T(2024, 1, 1, 12),
            subscription_id="sub",
            invoice_number="INV-000001",
            amount=999,
            reference="short",
        )
    assert usd.invoice("INV-000001")["status"] == "open"


# ---- cancellation --------------------------------------------------------------------------


def test_cancel_at_period_end_churns_at_period_end_and_bills_no_more(usd: Book) -> None:
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1))
    outcome = usd.run(c.Cancel, T(2024, 1, 10), subscription_id="sub")
    assert (outcome["status"], outcome["cancel_at"]) == ("active", "2024-02-01T00:00:00Z")
    sub = usd.subscription("sub")
    assert (sub["status"], sub["cancel_at_period_end"], sub["mrr"]) == ("active", True, 1000)

    usd.advance(T(2024, 6, 1))

    (churned,) = usd.events_of("sub", "Churned")
    assert (churned.timestamp, churned.kind, churned.reason) == (
        T(2024, 2, 1),
        "voluntary",
        "canceled_at_period_end",
    )
    assert [i["number"] for i in usd.invoices("sub")] == ["INV-000001"]
    sub = usd.subscription("sub")
    assert (sub["status"], sub["mrr"], sub["canceled_at"]) == (
        "canceled",
        0,
        "2024-02-01T00:00:00Z",
    )


def test_cancel_immediately_churns_now_and_mrr_drops_to_zero(usd: Book) -> None:
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1))
    outcome = usd.run(c.Cancel, T(2024, 1, 10), subscription_id="sub", immediately=True)
    assert (outcome["status"], outcome["cancel_at"]) == ("canceled", "2024-01-10T00:00:00Z")
    assert usd.subscription("sub")["mrr"] == 0
    assert reports.mrr(usd.db)["USD"]["mrr"] == 0
    assert reports.mrr(usd.db)["USD"]["active_subscriptions"] == 0
    usd.advance(T(2024, 3, 1))
    assert len(usd.invoices("sub")) == 1


def test_a_canceled_subscription_refuses_changes(usd: Book) -> None:
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1))
    usd.run(c.Cancel, T(2024, 1, 10), subscription_id="sub", immediately=True)
    for cmd, fields in [
        (c.Cancel, {}),
        (c.Pause, {}),
        (c.ChangePlan, {"plan_id": "basic", "quantity": 2}),
    ]:
        with pytest.raises(InvalidTransition):
            usd.run(cmd, T(2024, 1, 11), subscription_id="sub", **fields)


def test_cancelling_twice_at_period_end_is_refused(usd: Book) -> None:
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1))
    usd.run(c.Cancel, T(2024, 1, 10), subscription_id="sub")
    with pytest.raises(InvalidTransition):
        usd.run(c.Cancel, T(2024, 1, 11), subscription_id="sub")


# ---- reactivation --------------------------------------------------------------------------


def test_reactivate_withdraws_a_scheduled_cancellation(usd: Book) -> None:
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1))
    usd.run(c.Cancel, T(2024, 1, 10), subscription_id="sub")
    outcome = usd.run(c.Reactivate, T(2024, 1, 12), subscription_id="sub")
    assert (outcome["status"], outcome["invoices"]) == ("active", [])
    (reactivated,) = usd.events_of("sub", "Reactivated")
    assert reactivated.kind == "unscheduled"
    assert usd.subscription("sub")["cancel_at_period_end"] is False

    usd.advance(T(2024, 2, 1))

    assert usd.events_of("sub", "Churned") == []
    assert [(i["reason"], i["period_start"]) for i in usd.invoices("sub")] == [
        ("subscription_create", "2024-01-01T00:00:00Z"),
        ("renewal", "2024-02-01T00:00:00Z"),
    ]


def test_reactivate_after_churn_past_period_end_starts_a_new_period_and_invoices(
    usd: Book,
) -> None:
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1))
    usd.run(c.Cancel, T(2024, 1, 5), subscription_id="sub")
    usd.advance(T(2024, 2, 10))
    assert usd.subscription("sub")["status"] == "canceled"

    outcome = usd.run(c.Reactivate, T(2024, 2, 15), subscription_id="sub")

    assert (outcome["status"], outcome["invoices"]) == ("active", ["INV-000002"])
    reactivated = usd.events_of("sub", "Reactivated")[-1]
    assert (reactivated.kind, reactivated.period_start, reactivated.period_end) == (
        "restarted",
        T(2024, 2, 15),
        T(2024, 3, 15),
    )
    invoice = usd.invoice("INV-000002")
    assert (
        invoice["reason"],
        invoice["period_start"],
        invoice["period_end"],
        invoice["total"],
    ) == (
        "reactivation",
        "2024-02-15T00:00:00Z",
        "2024-03-15T00:00:00Z",
        1000,
    )
    sub = usd.subscription("sub")
    assert (sub["status"], sub["mrr"], sub["canceled_at"], sub["churn_kind"]) == (
        "active",
        1000,
        None,
        None,
    )
    moves = usd.db.query(
        "SELECT at, kind, delta FROM mrr_movements WHERE subscription_id = 'sub' ORDER BY at"
    )
    assert [(m["kind"], m["delta"]) for m in moves] == [
        ("new", 1000),
        ("churn", -1000),
        ("reactivation", 1000),
    ]
    usd.advance(T(2024, 3, 15))
    assert usd.invoices("sub")[-1]["period_start"] == "2024-03-15T00:00:00Z"


def test_reactivate_within_the_paid_period_does_not_bill_it_again(usd: Book) -> None:
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1))
    usd.run(c.Cancel, T(2024, 1, 5), subscription_id="sub", immediately=True)
    outcome = usd.run(c.Reactivate, T(2024, 1, 20), subscription_id="sub")
    assert (outcome["status"], outcome["invoices"]) == ("active", [])
    sub = usd.subscription("sub")
    assert (sub["current_period_start"], sub["current_period_end"]) == (
        "2024-01-01T00:00:00Z",
        "2024-02-01T00:00:00Z",
    )
    usd.advance(T(2024, 2, 1))
    assert [i["period_start"] for i in usd.invoices("sub")] == [
        "2024-01-01T00:00:00Z",
        "2024-02-01T00:00:00Z",
    ]


def test_reactivating_an_active_subscription_is_refused(usd: Book) -> None:
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1))
    with pytest.raises(InvalidTransition):
        usd.run(c.Reactivate, T(2024, 1, 2), subscription_id="sub")


# ---- pause and resume ----------------------------------------------------------------------


def test_pause_stops_billing_and_resume_after_the_paid_period_starts_a_new_one(
    usd: Book,
) -> None:
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1))
    outcome = usd.run(c.Pause, T(2024, 1, 10), subscription_id="sub")
    assert outcome["status"] == "paused"
    assert (usd.subscription("sub")["status"], usd.subscription("sub")["mrr"]) == ("paused", 0)

    usd.advance(T(2024, 3, 15))
    assert len(usd.invoices("sub")) == 1  # nothing billed while paused

    outcome = usd.run(c.Resume, T(2024, 3, 20), subscription_id="sub")

    assert (outcome["status"], outcome["invoices"]) == ("active", ["INV-000002"])
    invoice = usd.invoice("INV-000002")
    assert (invoice["reason"], invoice["period_start"], invoice["period_end"]) == (
        "resume",
        "2024-03-20T00:00:00Z",
        "2024-04-20T00:00:00Z",
    )
    assert usd.subscription("sub")["mrr"] == 1000
    usd.advance(T(2024, 4, 20))
    assert usd.invoices("sub")[-1]["period_start"] == "2024-04-20T00:00:00Z"


def test_resume_within_the_paid_period_keeps_it_without_an_invoice(usd: Book) -> None:
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1))
    usd.run(c.Pause, T(2024, 1, 10), subscription_id="sub")
    outcome = usd.run(c.Resume, T(2024, 1, 20), subscription_id="sub")
    assert (outcome["status"], outcome["invoices"]) == ("active", [])
    sub = usd.subscription("sub")
    assert (sub["current_period_end"], sub["mrr"]) == ("2024-02-01T00:00:00Z", 1000)
    moves = usd.db.query(
        "SELECT kind, delta FROM mrr_movements WHERE subscription_id = 'sub' ORDER BY at"
    )
    assert [(m["kind"], m["delta"]) for m in moves] == [
        ("new", 1000),
        ("churn", -1000),
        ("reactivation", 1000),
    ]


def test_only_an_active_subscription_pauses_and_only_a_paused_one_resumes(usd: Book) -> None:
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1))
    with pytest.raises(InvalidTransition):
        usd.run(c.Resume, T(2024, 1, 2), subscription_id="sub")
    usd.run(c.Pause, T(2024, 1, 3), subscription_id="sub")
    with pytest.raises(InvalidTransition):
        usd.run(c.Pause, T(2024, 1, 4), subscription_id="sub")


# ---- price changes and retired plans -------------------------------------------------------


def test_price_change_for_new_subscribers_keeps_existing_ones_on_their_price(usd: Book) -> None:
    usd.subscribe("old", "cus", "basic", T(2024, 1, 1))
    outcome = usd.run(
        c.ChangePlanPrice, T(2024, 1, 5), plan_id="basic", pricing=flat(1500), apply_to="new"
    )
    assert (outcome["price_version"], outcome["migrated"]) == (2, 0)
    usd.subscribe("new", "cus", "basic", T(2024, 1, 6))
    usd.advance(T(2024, 3, 6))
    assert [i["total"] for i in usd.invoices("old")] == [1000, 1000, 1000]
    assert [i["total"] for i in usd.invoices("new")] == [1500, 1500, 1500]
    assert (usd.subscription("old")["plan_version"], usd.subscription("new")["plan_version"]) == (
        1,
        2,
    )
    assert reports.plans(usd.db)[0]["pricing"]["amount"] == 1500


def test_price_change_at_renewal_applies_from_each_subscribers_next_renewal(usd: Book) -> None:
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1))
    usd.run(
        c.ChangePlanPrice,
        T(2024, 1, 15),
        plan_id="basic",
        pricing=flat(2000),
        apply_to="at_renewal",
    )
    assert usd.subscription("sub")["mrr"] == 1000  # nothing changes before the renewal
    assert usd.invoices("sub")[-1]["total"] == 1000
    usd.advance(T(2024, 3, 1))
    assert [i["total"] for i in usd.invoices("sub")] == [1000, 2000, 2000]
    renewed = usd.events_of("sub", "Renewed")[0]
    assert (renewed.plan_version, renewed.mrr) == (2, 2000)
    assert usd.subscription("sub")["plan_version"] == 2


def test_price_change_immediately_prorates_every_live_subscriber_now(usd: Book) -> None:
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1))
    usd.subscribe("gone", "cus", "basic", T(2024, 1, 1))
    usd.run(c.Cancel, T(2024, 1, 2), subscription_id="gone", immediately=True)
    usd.advance(T(2024, 1, 16, 12))

    outcome = usd.run(
        c.ChangePlanPrice,
        T(2024, 1, 16, 12),
        plan_id="basic",
        pricing=flat(3000),
        apply_to="immediately",
    )

    assert outcome["migrated"] == 1
    invoice = usd.invoices("sub")[-1]
    assert invoice["reason"] == "proration"
    assert [(ln["kind"], ln["amount"]) for ln in invoice["lines"]] == [
        ("proration_credit", -500),
        ("proration_charge", 1500),
    ]
    (changed,) = usd.events_of("sub", "PlanChanged")
    assert (changed.reason, changed.plan_version, changed.mrr) == ("price_change", 2, 3000)
    assert len(usd.invoices("gone")) == 1
    usd.advance(T(2024, 2, 1))
    assert usd.invoices("sub")[-1]["total"] == 3000


def test_retired_plan_refuses_new_subscribers_but_keeps_renewing_existing_ones(
    usd: Book,
) -> None:
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1))
    usd.run(c.RetirePlan, T(2024, 1, 10), plan_id="basic")
    head = usd.head()
    with pytest.raises(PlanRetired):
        usd.subscribe("late", "cus", "basic", T(2024, 1, 11))
    assert usd.head() == head
    assert reports.plans(usd.db)[0]["retired"] is True
    usd.advance(T(2024, 2, 1))
    assert [i["total"] for i in usd.invoices("sub")] == [1000, 1000]


# ---- commands that arrive after due work the clock has not run yet --------------------------


def _cancel_late(book: Book) -> None:
    book.subscribe("late", "cus", "basic", T(2024, 1, 1))
    book.run(c.Cancel, T(2024, 2, 15), subscription_id="late")


def _cancel_trial_late(book: Book) -> None:
    book.plan("trial", T(2024, 1, 1), flat(1000), trial_days=14)
    book.subscribe("late", "cus", "trial", T(2024, 1, 1))
    book.run(c.Cancel, T(2024, 2, 15), subscription_id="late")


def _withdraw_late(book: Book) -> None:
    book.subscribe("late", "cus", "basic", T(2024, 1, 1))
    book.run(c.Cancel, T(2024, 1, 5), subscription_id="late")
    book.run(c.Reactivate, T(2024, 2, 15), subscription_id="late")


@pytest.mark.parametrize("late_command", [_cancel_late, _cancel_trial_late, _withdraw_late])
def test_a_command_after_overdue_work_does_not_wedge_the_schedule(usd: Book, late_command) -> None:
    usd.subscribe("other", "cus", "basic", T(2024, 1, 1))
    with contextlib.suppress(LedgerError):  # refusing the late command is a fine answer too
        late_command(usd)
    usd.advance(T(2024, 3, 1))
    assert [i["period_start"] for i in usd.invoices("other")] == [
        "2024-01-01T00:00:00Z",
        "2024-02-01T00:00:00Z",
        "2024-03-01T00:00:00Z",
    ]


def test_reactivation_after_an_unpaid_upgrade_does_not_rebill_the_paid_period(usd: Book) -> None:
    usd.plan("pro", T(2024, 1, 1), flat(3000), name="Pro")
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1))  # Jan 1 - Feb 1 paid
    usd.run(c.UpdateCustomer, T(2024, 1, 2), customer_id="cus", payment_token="tok_chargeDeclined")
    usd.run(c.ChangePlan, T(2024, 1, 3), subscription_id="sub", plan_id="pro")
    usd.advance(T(2024, 1, 11))  # the upgrade's charge never succeeds: involuntary churn
    assert usd.invoice("INV-000002")["status"] == "uncollectible"
    assert usd.invoice("INV-000001")["status"] == "paid"
    usd.run(c.UpdateCustomer, T(2024, 1, 12), customer_id="cus", payment_token="tok_visa")

    usd.run(c.Reactivate, T(2024, 1, 12), subscription_id="sub")

    later = usd.invoices("sub")[2:]
    recurring = [ln for inv in later for ln in inv["lines"] if ln["kind"] == "recurring"]
    credits = [ln for inv in later for ln in inv["lines"] if ln["kind"] == "proration_credit"]
    # Jan 12 - Feb 1 was paid for on INV-000001: not billed again, or credited
    assert all(ln["period_start"] >= "2024-02-01T00:00:00Z" for ln in recurring) or credits
