"""The Ledger's rules: refusals, idempotency, time, card numbers, erasure and the audit trail."""

from __future__ import annotations

from pathlib import Path

import pytest
from eventsourcing.cryptography import AESCipher
from eventsourcing.utils import Environment
from ledger_support import Book, T, flat, to_record

from domain import commands as c
from domain.errors import (
    AlreadyExists,
    CardNumberRefused,
    CustomerErased,
    IdempotencyConflict,
    InvalidInput,
    LedgerError,
    UnknownCoupon,
    UnknownCustomer,
    UnknownPlan,
    UnknownSubscription,
)
from domain.identity import customer_uuid
from projections import reports

PAN = "4242424242424242"  # Stripe's test Visa: passes Luhn
PAN_SPACED = "4242 4242 4242 4242"
META_KEYS = {"command_id", "command", "actor", "source", "correlation_id"}


@pytest.fixture
def usd(book: Book) -> Book:
    t = T(2024, 1, 1)
    book.plan("basic", t, flat(1000), name="Basic")
    book.customer("cus", t)
    return book


def bytes_in(data_dir: Path, needle: str) -> int:
    """How often `needle` occurs in any file of the data dir (databases, WAL files, ...)."""
    return sum(p.read_bytes().count(needle.encode()) for p in data_dir.rglob("*") if p.is_file())


# ---- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"customer_id": "nobody"}, UnknownCustomer, "unknown customer 'nobody'"),
        ({"plan_id": "nope"}, UnknownPlan, "unknown plan 'nope'"),
        ({"coupon": "NOPE"}, UnknownCoupon, "unknown coupon 'NOPE'"),
        ({"quantity": 0}, InvalidInput, "quantity"),
        ({"anchor_day": 29}, InvalidInput, "anchor day"),
    ],
)
def test_subscribe_is_refused_with_a_named_error_and_records_nothing(
    usd: Book, fields: dict, error: type[LedgerError], message: str
) -> None:
    head = usd.head()
    args = {"customer_id": "cus", "plan_id": "basic", "subscription_id": "sub", **fields}
    with pytest.raises(error, match=message):
        usd.run(c.Subscribe, T(2024, 1, 2), **args)
    assert usd.head() == head
    assert usd.invoices() == []
    assert reports.subscription(usd.db, "sub") is None


def test_unknown_subscription_is_refused(usd: Book) -> None:
    with pytest.raises(UnknownSubscription):
        usd.run(c.Cancel, T(2024, 1, 2), subscription_id="ghost")


def test_defining_a_plan_or_customer_twice_is_refused(usd: Book) -> None:
    with pytest.raises(AlreadyExists, match="plan 'basic' already exists"):
        usd.plan("basic", T(2024, 1, 2), flat(5))
    with pytest.raises(AlreadyExists, match="customer 'cus' already exists"):
        usd.customer("cus", T(2024, 1, 2))
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 2))
    with pytest.raises(AlreadyExists, match="subscription 'sub' already exists"):
        usd.subscribe("sub", "cus", "basic", T(2024, 1, 3))
    assert len(usd.invoices()) == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"email": "not-an-email"},
        {"country": "usa"},
        {"payment_token": "x"},
        {"name": "  "},
    ],
)
def test_customer_profile_is_validated(book: Book, fields: dict) -> None:
    args = {
        "customer_id": "cus",
        "name": "Ada",
        "email": "ada@example.com",
        "payment_token": "tok_visa",
        **fields,
    }
    with pytest.raises(InvalidInput):
        book.run(c.RegisterCustomer, T(2024, 1, 1), **args)
    assert book.head() == 0


def test_a_rejected_command_in_a_batch_changes_nothing_and_the_others_apply(usd: Book) -> None:
    results = usd.ledger.execute_batch(
        [
            c.Subscribe(
                command_id="b1",
                at=T(2024, 1, 2),
                customer_id="cus",
                plan_id="basic",
                subscription_id="one",
            ),
            c.Subscribe(
                command_id="b2",
                at=T(2024, 1, 2),
                customer_id="cus",
                plan_id="basic",
                subscription_id="bad",
                coupon="NOPE",
            ),
            c.Subscribe(
                command_id="b3",
                at=T(2024, 1, 2),
                customer_id="cus",
                plan_id="basic",
                subscription_id="two",
            ),
        ]
    )
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, UnknownCoupon)
    usd.rt.catch_up()
    assert [(i["number"], i["subscription_id"]) for i in usd.invoices()] == [
        ("INV-000001", "one"),
        ("INV-000002", "two"),
    ]
    assert usd.events("bad") == []


# ---- time ----------------------------------------------------------------------------------


def test_a_command_dated_before_the_ledger_clock_takes_effect_at_the_clock(usd: Book) -> None:
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 10))
    outcome = usd.run(c.Cancel, T(2024, 1, 9, 23, 59, 59), subscription_id="sub")
    assert outcome["at"] == "2024-01-10T00:00:00Z"
    assert outcome["requested_at"] == "2024-01-09T23:59:59Z"
    assert "took effect at 2024-01-10T00:00:00Z" in outcome["note"]
    assert usd.subscription("sub")["cancel_at_period_end"] is True
    scheduled = usd.events_of("sub", "CancellationScheduled")[0]
    assert scheduled.timestamp == T(2024, 1, 10)
    assert scheduled.meta["requested_at"] == "2024-01-09T23:59:59Z"


def test_a_command_dated_after_the_clock_first_runs_what_fell_due(usd: Book) -> None:
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 10))
    usd.customer("cus2", T(2024, 3, 15))  # moves the clock past two renewals of "sub"
    assert usd.ledger.clock_now() == T(2024, 3, 15)
    assert [(i["number"], i["issued_at"]) for i in usd.invoices()] == [
        ("INV-000001", "2024-01-10T00:00:00Z"),
        ("INV-000002", "2024-02-10T00:00:00Z"),
        ("INV-000003", "2024-03-10T00:00:00Z"),
    ]
    outcome = usd.subscribe("sub2", "cus2", "basic", T(2024, 2, 1))  # behind the clock
    assert outcome["at"] == "2024-03-15T00:00:00Z"
    issued = [i["issued_at"] for i in usd.invoices()]
    assert issued == sorted(issued)


def test_the_clock_never_goes_backwards(usd: Book) -> None:
    usd.advance(T(2024, 3, 1))
    outcome = usd.advance(T(2024, 2, 1))
    assert outcome["requested_at"] == "2024-02-01T00:00:00Z"
    assert outcome["renewals"] == 0
    assert usd.ledger.clock_now() == T(2024, 3, 1)


def test_naive_times_are_refused() -> None:
    from datetime import datetime

    with pytest.raises(InvalidInput):
        c.AdvanceClock(command_id="x", at=datetime(2024, 1, 1))


# ---- idempotency ---------------------------------------------------------------------------


def test_a_repeated_command_id_has_no_second_effect(usd: Book) -> None:
    first = usd.run(
        c.Subscribe,
        T(2024, 1, 2),
        command_id="signup-1",
        customer_id="cus",
        plan_id="basic",
        subscription_id="sub",
    )
    head = usd.head()
    again = usd.run(
        c.Subscribe,
        T(2024, 1, 2),
        command_id="signup-1",
        customer_id="cus",
        plan_id="basic",
        subscription_id="sub",
    )
    assert first["duplicate"] is False
    assert again == {**first, "duplicate": True}
    assert usd.head() == head
    assert len(usd.invoices()) == 1
    assert len(usd.events_of("sub", "PaymentSucceeded")) == 1


def test_a_command_id_reused_for_another_request_is_refused(usd: Book) -> None:
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 2))
    first = usd.run(c.Cancel, T(2024, 1, 5), command_id="cancel-1", subscription_id="sub")
    head = usd.head()
    for other in (
        {"at": T(2024, 1, 5), "immediately": True},  # the same command, other parameters
        {"at": T(2024, 1, 6)},  # another effective time
    ):
        with pytest.raises(
            IdempotencyConflict, match="command id cancel-1 was already used for a different"
        ):
            usd.run(c.Cancel, command_id="cancel-1", subscription_id="sub", **other)
    with pytest.raises(IdempotencyConflict):  # another command altogether
        usd.run(c.Pause, T(2024, 1, 5), command_id="cancel-1", subscription_id="sub")
    assert usd.head() == head
    assert usd.subscription("sub")["status"] == "active"
    again = usd.run(c.Cancel, T(2024, 1, 5), command_id="cancel-1", subscription_id="sub")
    assert again == {**first, "duplicate": True}


def test_a_command_published_with_its_customer_filled_in_is_the_same_request(
    usd: Book,
) -> None:
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 2))
    direct = c.Pause(command_id="p-1", at=T(2024, 1, 5), subscription_id="sub")
    keyed = c.Pause(
        command_id="p-1", at=T(2024, 1, 5), subscription_id="sub", customer_id="cus"
    ).implying("customer_id")
    assert direct.request_digest() == keyed.request_digest()
    assert usd.ledger.execute(direct)["duplicate"] is False
    assert usd.ledger.execute(keyed)["duplicate"] is True


def test_an_implied_field_is_not_part_of_the_request(usd: Book) -> None:
    """The CLI's default `at` (now) differs on a retry: the retry is still the same request."""
    first = c.RetirePlan(command_id="r-1", at=T(2024, 1, 5), plan_id="basic").implying("at")
    retry = c.RetirePlan(command_id="r-1", at=T(2024, 1, 9), plan_id="basic").implying("at")
    assert first.request_digest() == retry.request_digest()
    assert usd.ledger.execute(first)["duplicate"] is False
    assert usd.ledger.execute(retry)["duplicate"] is True
    with pytest.raises(IdempotencyConflict):  # but an explicit time is part of it
        usd.ledger.execute(c.RetirePlan(command_id="r-1", at=T(2024, 1, 9), plan_id="basic"))


def test_a_command_id_repeated_within_one_batch_applies_once(usd: Book) -> None:
    cmd = c.Subscribe(
        command_id="dup", at=T(2024, 1, 2), customer_id="cus", plan_id="basic", subscription_id="s"
    )
    first, second = usd.ledger.execute_batch([cmd, cmd])
    assert first.ok and second.ok
    assert (first.outcome["duplicate"], second.outcome["duplicate"]) == (False, True)
    assert len(usd.invoices()) == 1


def test_a_repeated_clock_advance_runs_the_schedule_once(usd: Book) -> None:
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1))
    usd.run(c.AdvanceClock, T(2024, 2, 1), command_id="tick")
    head = usd.head()
    usd.run(c.AdvanceClock, T(2024, 2, 1), command_id="tick")
    assert usd.head() == head
    assert len(usd.invoices()) == 2


# ---- card numbers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "fields"),
    [
        (c.RegisterCustomer, {"customer_id": "p", "payment_token": PAN}),
        (c.RegisterCustomer, {"customer_id": "p", "name": PAN_SPACED}),
        (c.RegisterCustomer, {"customer_id": "p", "preferences": {"note": f"card {PAN}"}}),
        (c.RegisterCustomer, {"customer_id": PAN}),
        (c.UpdateCustomer, {"customer_id": "cus", "payment_token": PAN}),
        (c.UpdateCustomer, {"customer_id": "cus", "name": "4242-4242-4242-4242"}),
        (c.Subscribe, {"subscription_id": PAN}),
        (c.DefinePlan, {"plan_id": "p", "name": f"Plan {PAN}"}),
        (c.RecordPayment, {"reference": PAN}),
        (c.DefineCoupon, {"code": PAN}),
        (c.Cancel, {"reason": f"card {PAN}"}),
        (c.Pause, {"actor": PAN}),
        (c.Pause, {"source": PAN_SPACED}),
    ],
)
def test_a_card_number_in_any_field_is_refused_and_never_stored(
    usd: Book, cls: type[c.Command], fields: dict
) -> None:
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1))
    defaults = {
        c.RegisterCustomer: {
            "name": "Ada",
            "email": "ada@example.com",
            "payment_token": "tok_visa",
        },
        c.UpdateCustomer: {},
        c.Subscribe: {"customer_id": "cus", "plan_id": "basic"},
        c.DefinePlan: {"currency": "USD", "pricing": flat(100)},
        c.RecordPayment: {
            "subscription_id": "sub",
            "invoice_number": "INV-000001",
            "amount": 1000,
        },
        c.DefineCoupon: {"percent_off_bp": 1000},
        c.Cancel: {"subscription_id": "sub"},
        c.Pause: {"subscription_id": "sub"},
    }[cls]
    head = usd.head()
    with pytest.raises(CardNumberRefused) as refused:
        usd.run(cls, T(2024, 1, 2), **{**defaults, **fields})
    assert "4242" not in str(refused.value)  # the field is named, the value never echoed
    assert usd.head() == head
    usd.close()
    data_dir = usd.config.data_dir
    assert bytes_in(data_dir, PAN) == 0
    assert bytes_in(data_dir, "4242-4242") == 0
    assert bytes_in(data_dir, "4242 4242") == 0


def test_personal_data_is_never_stored_in_clear(usd: Book) -> None:
    usd.customer("grace", T(2024, 1, 1), name="Grace Hopper", email="grace@navy.example")
    usd.subscribe("sub", "grace", "basic", T(2024, 1, 1))
    usd.close()
    data_dir = usd.config.data_dir
    assert bytes_in(data_dir, "Grace Hopper") == 0
    assert bytes_in(data_dir, "grace@navy.example") == 0


# ---- erasure -------------------------------------------------------------------------------


def test_erasure_shreds_the_personal_data_and_keeps_the_money(usd: Book) -> None:
    usd.customer("grace", T(2024, 1, 1), name="Grace Hopper", email="grace@navy.example")
    usd.subscribe("sub", "grace", "basic", T(2024, 1, 1))
    profile = usd.ledger.customer_profile("grace")
    assert (profile["name"], profile["email"], profile["erased"]) == (
        "Grace Hopper",
        "grace@navy.example",
        False,
    )
    cid = str(customer_uuid("grace"))
    key = usd.rt.keys.get(cid)
    assert key is not None
    registered = usd.ledger.history(customer_uuid("grace"))[0]
    ciphertext = registered.personal

    usd.run(c.EraseCustomer, T(2024, 1, 5), customer_id="grace")

    assert usd.ledger.customer_profile("grace") == {
        "customer_id": "grace",
        "country": "US",
        "erased": True,
    }
    assert usd.rt.keys.get(cid) is None
    assert usd.ledger.vault.decrypt(cid, ciphertext) is None
    # the ciphertext is still in the immutable history, and no key left can open it
    assert usd.ledger.history(customer_uuid("grace"))[0].personal == ciphertext
    for other in [usd.rt.keys.get(str(customer_uuid("cus")))]:
        cipher = AESCipher(Environment(env={AESCipher.CIPHER_KEY: other}))
        with pytest.raises(Exception):  # noqa: B017 - any failure to decrypt will do
            cipher.decrypt(bytes.fromhex(ciphertext))
    (invoice,) = usd.invoices("sub")
    assert (invoice["customer_id"], invoice["total"], invoice["status"]) == ("grace", 1000, "paid")
    assert usd.db.query("SELECT erased FROM customers WHERE customer_id = 'grace'") == [
        {"erased": 1}
    ]


def test_an_erased_customer_cannot_subscribe_or_be_updated_or_erased_again(usd: Book) -> None:
    usd.run(c.EraseCustomer, T(2024, 1, 5), customer_id="cus")
    with pytest.raises(CustomerErased):
        usd.subscribe("sub", "cus", "basic", T(2024, 1, 6))
    with pytest.raises(CustomerErased):
        usd.run(c.UpdateCustomer, T(2024, 1, 6), customer_id="cus", name="Back")
    with pytest.raises(CustomerErased):
        usd.run(c.EraseCustomer, T(2024, 1, 6), customer_id="cus")


def test_erasing_a_customer_with_a_live_subscription_does_not_stop_the_clock(usd: Book) -> None:
    usd.customer("gone", T(2024, 1, 1))
    usd.subscribe("kept", "cus", "basic", T(2024, 1, 1))
    usd.subscribe("orphan", "gone", "basic", T(2024, 1, 1))
    usd.run(c.EraseCustomer, T(2024, 1, 5), customer_id="gone")

    usd.advance(T(2024, 2, 2))

    assert [i["period_start"] for i in usd.invoices("kept")] == [
        "2024-01-01T00:00:00Z",
        "2024-02-01T00:00:00Z",
    ]
    orphan = usd.subscription("orphan")
    assert (orphan["status"], orphan["churn_kind"], orphan["churn_reason"]) == (
        "canceled",
        "involuntary",
        "customer_erased",
    )
    assert orphan["canceled_at"] == "2024-02-01T00:00:00Z"
    assert [i["number"] for i in usd.invoices("orphan")] == ["INV-000002"]  # no renewal


def test_an_erased_customers_open_invoice_is_written_off_at_the_next_retry(usd: Book) -> None:
    usd.customer("gone", T(2024, 1, 1), token="tok_chargeDeclined")
    usd.subscribe("orphan", "gone", "basic", T(2024, 1, 1))
    usd.run(c.EraseCustomer, T(2024, 1, 1, 12), customer_id="gone")

    usd.advance(T(2024, 1, 3))

    failures = usd.events_of("orphan", "PaymentFailed")
    assert [(e.attempt, e.reason, e.next_retry_at) for e in failures] == [
        (1, "card_declined", T(2024, 1, 2)),
        (2, "customer_erased", None),
    ]
    assert usd.subscription("orphan")["status"] == "canceled"
    assert usd.invoice("INV-000001")["status"] == "uncollectible"


def test_a_shredded_key_leaves_no_copy_on_disk(usd: Book) -> None:
    key = usd.rt.keys.get(str(customer_uuid("cus")))
    usd.run(c.EraseCustomer, T(2024, 1, 5), customer_id="cus")
    assert bytes_in(usd.config.data_dir, key) == 0


# ---- the audit trail -----------------------------------------------------------------------


def test_every_subscription_event_carries_who_asked_and_which_command(usd: Book) -> None:
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1), command_id="signup", actor="alice")
    usd.run(c.Cancel, T(2024, 1, 10), subscription_id="sub", command_id="bye", actor="bob")
    usd.run(c.AdvanceClock, T(2024, 2, 1), command_id="tick")

    rows = [
        (r.type, r.meta["command"], r.meta["command_id"], r.meta["actor"], r.meta["source"])
        for r in map(to_record, usd.events("sub"))
    ]
    assert rows == [
        ("Subscribed", "Subscribe", "signup", "alice", "pytest"),
        ("Invoiced", "Subscribe", "signup", "alice", "pytest"),
        ("ChargeRequested", "Subscribe", "signup", "alice", "pytest"),
        # the payments worker's answer, after commit, correlated with the signup
        ("PaymentSucceeded", "RecordChargeOutcome", "charge:INV-000001:1", "payments", "payments"),
        ("CancellationScheduled", "Cancel", "bye", "bob", "pytest"),
        ("Churned", "AdvanceClock", "tick", "scheduler", "pytest"),
    ]
    for event in usd.events("sub"):
        assert set(event.meta) >= META_KEYS
        caused_by = "signup" if event.meta["command"] == "RecordChargeOutcome" else None
        assert event.meta["correlation_id"] == caused_by or event.meta["command_id"]


def test_history_can_show_the_state_as_of_any_version(usd: Book) -> None:
    from domain.identity import subscription_uuid
    from domain.subscription import Subscription

    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1))
    usd.run(c.Cancel, T(2024, 1, 10), subscription_id="sub")
    usd.advance(T(2024, 2, 1))
    versions = [e.originator_version for e in usd.events("sub")]
    before_cancel = usd.ledger.get(Subscription, subscription_uuid("sub"), version=versions[2])
    now = usd.ledger.get(Subscription, subscription_uuid("sub"))
    assert (before_cancel.status, before_cancel.cancel_at_period_end) == ("active", False)
    assert now.status == "canceled"


def test_every_event_in_the_store_carries_full_metadata(usd: Book) -> None:
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1))
    usd.advance(T(2024, 2, 1))
    missing = [
        (r.aggregate_type, r.type, sorted(META_KEYS - set(r.meta)))
        for r in usd.records()
        if not set(r.meta) >= META_KEYS
    ]
    assert missing == []


def test_a_second_runtime_on_the_same_store_sees_the_same_book(usd: Book, tmp_path: Path) -> None:
    usd.subscribe("sub", "cus", "basic", T(2024, 1, 1))
    usd.advance(T(2024, 3, 1))
    before = usd.invoices()
    usd.close()
    again = Book.embedded(usd.config.data_dir)
    try:
        assert again.invoices() == before
        assert again.ledger.clock_now() == T(2024, 3, 1)
        assert again.ledger.customer_profile("cus")["name"] == "Ada Lovelace"
        again.advance(T(2024, 4, 1))
        assert [i["number"] for i in again.invoices()][-1] == "INV-000004"
    finally:
        again.close()


def test_a_rejection_inside_a_batch_leaves_no_half_made_change_behind(book: Book) -> None:
    """The batch is redone without the rejected command, from stored state (not the cache)."""
    t = T(2024, 1, 1)
    book.plan("basic", t, flat(1000))
    book.plan("pro", t, flat(3000))
    book.customer("cus", t)
    book.subscribe("sub", "cus", "basic", t)
    batch = [
        c.ChangePlan(command_id="up", at=T(2024, 1, 16), subscription_id="sub", plan_id="pro"),
        c.Cancel(command_id="bad", at=T(2024, 1, 16), subscription_id="nobody"),
        c.ChangePlan(
            command_id="q", at=T(2024, 1, 16), subscription_id="sub", plan_id="pro", quantity=1
        ),
    ]
    results = book.ledger.execute_batch(batch)
    assert [r.ok for r in results] == [True, False, False]
    assert book.event_types("sub").count("PlanChanged") == 1
    assert [i["reason"] for i in book.invoices("sub")] == ["subscription_create", "proration"]
    # and the next command meets the committed state, not a leftover from the first try
    book.run(c.Cancel, T(2024, 1, 20), subscription_id="sub")
    assert book.subscription("sub")["cancel_at_period_end"] is True


def test_a_subscription_never_starts_before_its_customer_or_plan_existed(book: Book) -> None:
    book.plan("basic", T(2024, 3, 1), flat(1000))
    book.customer("late", T(2024, 5, 1))
    outcome = book.subscribe("sub", "late", "basic", T(2024, 4, 1))  # behind the clock
    assert outcome["at"] == "2024-05-01T00:00:00Z"
    assert book.subscription("sub")["created_at"] == "2024-05-01T00:00:00Z"
