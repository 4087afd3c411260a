"""CommandCodec and EventCodec: round trips of real commands and events, and clear errors.

Events come from driving the real Ledger application (in memory) through a scenario that
emits every event type, so the test sees exactly what the relay will publish.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import pickle
import typing
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastavro import schemaless_reader
from fastavro.schema import load_schema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import commands as c
from domain.identity import subscription_uuid
from domain.limits import COUNTRIES, MAX_AMOUNT
from schemas import model, registry
from schemas.codec import (
    CommandCodec,
    DecodeError,
    EncodeError,
    EventCodec,
    command_key,
    event_key,
)
from schemas.records import EventRecord, to_record

T0 = datetime(2024, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def commands() -> CommandCodec:
    return CommandCodec()


@functools.cache
def event_codec() -> EventCodec:
    """One codec for the module (hypothesis tests cannot take fixtures per example)."""
    return EventCodec()


@pytest.fixture(scope="module")
def events() -> EventCodec:
    return event_codec()


# ---- commands -----------------------------------------------------------------------

text = st.text(
    st.characters(exclude_categories=("Cc", "Cf", "Cs")), min_size=1, max_size=12
).filter(lambda t: t.strip() != "")
longs = st.integers(-(2**63), 2**63 - 1)
aware = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2199, 12, 31), timezones=st.just(UTC)
)
amounts = st.integers(0, MAX_AMOUNT)
tiers = st.lists(st.integers(1, 10**6), min_size=0, max_size=3, unique=True).map(
    lambda bounds: [
        {"up_to": up_to, "unit_amount": 100 * i, "flat_amount": i}
        for i, up_to in enumerate([*sorted(bounds), None])
    ]
)
pricing = st.one_of(
    st.builds(
        lambda m, a: {"model": m, "amount": a, "tiers": []},
        st.sampled_from(["flat", "per_unit"]),
        amounts,
    ),
    st.builds(
        lambda m, t: {"model": m, "amount": 0, "tiers": t},
        st.sampled_from(["tiered", "volume"]),
        tiers,
    ),
)
# Fields whose values the commands check themselves: generate values inside their ranges
# (the codec must carry any valid command unchanged; the ranges have tests of their own).
BY_NAME: dict[str, st.SearchStrategy[Any]] = {
    "country": st.sampled_from(sorted(COUNTRIES)),
    "currency": st.sampled_from(["USD", "EUR", "JPY", "KWD"]),
    "email": st.from_regex(r"[a-z]{1,8}@[a-z]{1,8}\.(com|org)", fullmatch=True),
    "payment_token": st.from_regex(r"tok_[A-Za-z0-9_]{1,12}", fullmatch=True),
    "quantity": st.integers(1, 10**6),
    "amount": st.integers(1, 10**9),
    "rate_ppm": st.integers(0, 1_000_000),
    "trial_days": st.integers(0, 730),
    "interval": st.sampled_from(["day", "week", "month", "year"]),
    "interval_count": st.integers(1, 10),
    "anchor_day": st.integers(1, 28),
    "apply_to": st.sampled_from(["new", "at_renewal", "immediately"]),
    "pricing": pricing,
    "implied": st.sampled_from([(), ("at",)]),
    "attempt": st.integers(1, 366),  # a charge or delivery attempt: its command checks it
    # "email" is a channel of a message and of a support note
    "channel": st.just("email"),
    "template": st.sampled_from(["welcome", "receipt", "renewal_reminder", "refund"]),
    "result": st.sampled_from(["sent", "failed", "gave_up"]),
    "lease_seconds": st.integers(1, 86_400),
    # an endpoint's URL and types, a delivery's source and HTTP status
    "url": st.sampled_from(["https://crm.example.com/hooks", "http://127.0.0.1:8080/h"]),
    "event_types": st.sampled_from([(), ("invoice.paid",), ("customer.created", "invoice.paid")]),
    "source_event": st.sampled_from(["Customer.Registered", "Subscription.Invoiced"]),
    "source_version": st.integers(1, 2**63 - 1),
    "status_code": st.integers(0, 999),
}


def strategy(hint: Any, name: str) -> st.SearchStrategy[Any]:
    """Any valid value of the field's declared type (the codec must carry it unchanged)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is not None and type(None) in args:
        (inner,) = (a for a in args if a is not type(None))
        return st.none() | strategy(inner, name)
    if name in BY_NAME:
        return BY_NAME[name]
    simple = {str: text, int: longs, bool: st.booleans(), datetime: aware}
    if hint in simple:
        return simple[hint]
    if origin is tuple:
        return st.lists(text, max_size=3).map(tuple)
    if origin is dict and args[1] is str:
        return st.dictionaries(text, text, max_size=3)
    raise AssertionError(f"no strategy for {name}: {hint!r}; extend this test")


COUPONS = st.one_of(
    st.fixed_dictionaries(
        {"percent_off_bp": st.integers(1, 10_000), "duration": st.sampled_from(["once", "forever"])}
    ),
    st.fixed_dictionaries(
        {
            "amount_off": st.integers(1, 10**9),
            "currency": st.just("USD"),
            "duration": st.just("repeating"),
            "periods": st.integers(1, 120),
        }
    ),
)


def command_strategy(cls: type) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    fields = {f.name: strategy(hints[f.name], f.name) for f in dataclasses.fields(cls)}
    if cls is c.DefineCoupon:  # one of percent or amount, and periods only when repeating
        for name in ("percent_off_bp", "amount_off", "currency", "duration", "periods"):
            fields.pop(name)
        return st.builds(lambda terms, **rest: cls(**rest, **terms), COUPONS, **fields)
    if cls is c.UpdateCustomer:  # something to update
        fields["country"] = BY_NAME["country"]
    return st.builds(cls, **fields)


@pytest.mark.parametrize("name", sorted(c.COMMANDS))
def test_every_command_round_trips(name: str, commands: CommandCodec) -> None:
    @settings(
        max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(command_strategy(c.COMMANDS[name]))
    def round_trip(command: c.Command) -> None:
        data = commands.encode(command)
        assert data[:2] == b"\xc3\x01"
        assert data[2:10] == commands.fingerprint(name)
        assert commands.decode(data) == command

    round_trip()


def test_command_keys_keep_one_customer_in_one_partition() -> None:
    at = T0
    assert (
        command_key(
            c.Subscribe(command_id="1", at=at, customer_id="cu", plan_id="p", subscription_id="s1")
        )
        == b"cu"
    )
    assert (
        command_key(c.Cancel(command_id="2", at=at, subscription_id="s1", customer_id="cu"))
        == b"cu"
    )
    assert command_key(c.ChangePlan(command_id="2", at=at, subscription_id="s1", plan_id="p")) == (
        b"s1"  # without its customer_id a subscription command is keyed by the subscription
    )
    assert command_key(c.Cancel(command_id="2", at=at, subscription_id="s1")) == b"s1"
    assert (
        command_key(
            c.RecordPayment(
                command_id="3",
                at=at,
                subscription_id="s1",
                invoice_number="INV-000001",
                amount=1,
                reference="r",
            )
        )
        == b"s1"
    )
    assert command_key(c.EraseCustomer(command_id="4", at=at, customer_id="cu")) == b"cu"
    assert command_key(c.RetirePlan(command_id="5", at=at, plan_id="pro")) == b"pro"
    assert (
        command_key(c.DefineCoupon(command_id="6", at=at, code="TEN", percent_off_bp=1000))
        == b"TEN"
    )
    assert command_key(c.SetTaxRate(command_id="7", at=at, country="GB", rate_ppm=200000)) == b"GB"
    assert command_key(c.AdvanceClock(command_id="8", at=at)) == b"clock"


@pytest.mark.parametrize("name", sorted(c.COMMANDS))
def test_every_command_class_has_a_key(name: str) -> None:
    cls = c.COMMANDS[name]
    hints = typing.get_type_hints(cls)
    values = {str: "k", int: 1, bool: False, datetime: T0}
    named = {"country": "GB", "email": "k@example.com", "payment_token": "tok_visa"}
    named |= {"channel": "email", "template": "welcome", "result": "sent"}  # notifications
    named |= {"currency": "USD"}  # credit
    named |= {"url": "https://k.example.com/h", "source_event": "Customer.Registered"}  # webhooks
    required = {
        f.name: named.get(f.name, values.get(hints[f.name], {"model": "flat"}))
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    if cls is c.UpdateCustomer:
        required["name"] = "K"
    if cls is c.DefineCoupon:
        required["percent_off_bp"] = 1000
    assert command_key(cls(**required)) in (b"k", b"GB", b"clock")


def test_a_decoded_command_that_breaks_its_validation_is_a_decode_error(
    commands: CommandCodec,
) -> None:
    good = commands.encode(c.Pause(command_id="x", at=T0, subscription_id="s"))
    assert good[10:12] == b"\x02x"  # the body starts with command_id: length 1, "x"
    with pytest.raises(DecodeError) as caught:
        commands.decode(good[:10] + b"\x00" + good[12:])  # command_id "" (length 0)
    assert caught.value.code == "invalid_input"
    assert "command_id is required" in caught.value.reason


def test_encoding_refuses_wrong_types_instead_of_truncating(commands: CommandCodec) -> None:
    payment = c.RecordPayment(
        command_id="x",
        at=T0,
        subscription_id="s",
        invoice_number="INV-000001",
        amount=10,
        reference="r",
    )
    object.__setattr__(payment, "amount", 10.5)  # past the command's own check
    with pytest.raises(EncodeError, match="amount"):
        commands.encode(payment)
    with pytest.raises(EncodeError):  # an unknown key in a nested record is refused too
        commands.encode(
            c.ChangePlanPrice(
                command_id="x",
                at=T0,
                plan_id="p",
                pricing={"model": "flat", "amount": 1, "tiers": [], "currency": "USD"},
            )
        )
    with pytest.raises(TypeError):
        commands.encode(None)


# ---- events -------------------------------------------------------------------------


class EverySubscription:
    """The Ledger's Schedule port: every subscription the scenario created may be due."""

    def __init__(self) -> None:
        self.ids: list[Any] = []

    def due_subscriptions(self, up_to: datetime) -> list[Any]:
        return list(self.ids)

    def subscriptions_on_plan(self, plan_id: str) -> list[Any]:
        return list(self.ids)


def run_scenario() -> list[EventRecord]:
    """A year in the life of the ledger, touching every event type; returns its records."""
    from adapters.gateway import SandboxGateway
    from adapters.keystores import SQLiteKeyStore
    from consumers.payments import InProcessPayments
    from domain.ledger import Ledger, LedgerSettings
    from domain.vault import Vault

    schedule = EverySubscription()
    app = Ledger(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
        vault=Vault(SQLiteKeyStore(":memory:")),
        gateway=SandboxGateway(),
        schedule=schedule,
        settings=LedgerSettings(),  # reminders for monthly plans too
    )
    app.after_commit = InProcessPayments(app)  # charges settled after each commit
    per_unit = {"model": "per_unit", "amount": 1000, "tiers": []}
    tiered = {
        "model": "tiered",
        "amount": 0,
        "tiers": [
            {"up_to": 5, "unit_amount": 900, "flat_amount": 0},
            {"up_to": None, "unit_amount": 700, "flat_amount": 100},
        ],
    }

    def claim(mid: str, who: str, channel: str, template: str, day: int) -> tuple:
        """a message's delivery claimed on `day`."""
        fields = {
            "message_id": mid,
            "customer_id": who,
            "channel": channel,
            "template": template,
            "claimer": "test",
            "attempted_at": T0 + day * DAY,
        }
        return (c.ClaimDelivery, day, fields)

    def outcome(mid: str, attempt: int, result: str, day: int) -> tuple:
        fields = {
            "message_id": mid,
            "customer_id": "ann",
            "attempt": attempt,
            "result": result,
            "detail": "451" if result == "failed" else "250 OK",
            "attempted_at": T0 + day * DAY,
        }
        return (c.RecordDelivery, day, fields)

    from domain.webhooks.delivery import delivery_id_for

    WHD = delivery_id_for("e-1", "we_1")  # the delivery's id
    # fmt: off
    script: list[tuple[type[c.Command], int, dict[str, Any]]] = [
        (c.DefinePlan, 0, {"plan_id": "pro", "name": "Pro", "currency": "USD",
                           "pricing": per_unit}),
        (c.DefinePlan, 0, {"plan_id": "team", "name": "Team", "currency": "USD",
                           "pricing": tiered, "trial_days": 14, "features": ("sso",)}),
        (c.SetTaxRate, 0, {"country": "US", "rate_ppm": 80000}),
        (c.SetTaxRate, 0, {"country": "US", "rate_ppm": 90000}),
        (c.DefineCoupon, 0, {"code": "TEN", "percent_off_bp": 1000, "duration": "repeating",
                             "periods": 2}),
        (c.RegisterCustomer, 0, {"customer_id": "ann", "name": "Ann", "email": "a@x.io",
                                 "payment_token": "tok_visa", "preferences": {"email": "on"}}),
        (c.RegisterCustomer, 0, {"customer_id": "bob", "name": "Bob", "email": "b@x.io",
                                 "payment_token": "tok_chargeDeclined"}),
        (c.Subscribe, 0, {"customer_id": "ann", "plan_id": "pro", "subscription_id": "s1",
                          "quantity": 2, "coupon": "TEN"}),
        (c.Subscribe, 0, {"customer_id": "ann", "plan_id": "team", "subscription_id": "s2",
                          "quantity": 3}),
        (c.Subscribe, 0, {"customer_id": "bob", "plan_id": "pro", "subscription_id": "s3"}),
        (c.UpdateCustomer, 1, {"customer_id": "ann", "email": "ann@x.io"}),
        # a note; deliveries through every step
        (c.RecordCustomerNote, 1, {"customer_id": "ann", "channel": "phone", "text": "Seats?"}),
        (c.RegisterCustomer, 1, {"customer_id": "cy", "name": "Cy", "email": "c@x.io",
                                 "payment_token": "tok_visa",
                                 "preferences": {"notify.in_app": "off"}}),
        claim("m-mail", "ann", "email", "welcome", 1),
        outcome("m-mail", 1, "failed", 1),
        claim("m-mail", "ann", "email", "welcome", 2),
        outcome("m-mail", 2, "sent", 2),
        claim("m-inbox", "ann", "in_app", "welcome", 2),
        (c.MarkNotificationRead, 2, {"message_id": "m-inbox", "customer_id": "ann"}),
        claim("m-hook", "ann", "webhook", "receipt", 2),
        claim("m-off", "cy", "in_app", "welcome", 2),
        (c.ChangePlan, 2, {"subscription_id": "s1", "plan_id": "pro", "quantity": 3}),
        (c.ChangePlan, 3, {"subscription_id": "s1", "plan_id": "team", "quantity": 3}),
        (c.ChangePlanPrice, 3, {"plan_id": "pro", "apply_to": "at_renewal",
                                "pricing": {**per_unit, "amount": 1200}}),
        (c.AdvanceClock, 20, {}),
        (c.Pause, 21, {"subscription_id": "s2"}),
        (c.Resume, 22, {"subscription_id": "s2"}),
        (c.Cancel, 23, {"subscription_id": "s2"}),
        (c.Reactivate, 24, {"subscription_id": "s2"}),
        (c.Cancel, 25, {"subscription_id": "s2", "immediately": True}),
        (c.Reactivate, 26, {"subscription_id": "s2"}),
        (c.AdvanceClock, 120, {}),
        (c.EraseCustomer, 121, {"customer_id": "bob"}),
        claim("m-gone", "bob", "email", "receipt", 121),  # notifications: erased, given up
        # an endpoint, a delivery tried and replayed, the endpoint removed
        (c.AddWebhookEndpoint, 121, {"endpoint_id": "we_1", "url": "https://crm.example.com/h",
                                     "event_types": ("customer.created",),
                                     "include_personal_data": True}),
        (c.ScheduleWebhookDelivery, 121, {"endpoint_id": "we_1", "event_id": "e-1",
                                          "source_event": "Customer.Registered",
                                          "source_id": "a-1", "source_version": 1,
                                          "occurred_at": T0 + 121 * DAY, "customer_id": "ann"}),
        (c.RecordWebhookAttempt, 121, {"delivery_id": WHD, "attempt": 1, "status_code": 503,
                                       "attempted_at": T0 + 121 * DAY, "error": "HTTP 503",
                                       "next_attempt_at": T0 + 122 * DAY}),
        (c.ReplayWebhookDelivery, 121, {"delivery_id": WHD}),
        (c.RemoveWebhookEndpoint, 121, {"endpoint_id": "we_1"}),
        (c.RetirePlan, 122, {"plan_id": "pro"}),
        (c.AdvanceClock, 365, {}),
    ]
    # fmt: on
    for number, (cls, days, fields) in enumerate(script):
        if "subscription_id" in fields:
            schedule.ids.append(subscription_uuid(fields["subscription_id"]))
        app.execute_batch(
            [
                cls(
                    command_id=f"cmd-{number}",
                    at=T0 + days * DAY,
                    actor="ops@example.com",
                    source="test",
                    **fields,
                )
            ]
        )
    seal = {"command_id": "seal", "command": "audit seal", "actor": "auditor", "source": "cli"}
    app.record_audit_seal(len(script), T0 + 366 * DAY, seal)
    notifications = app.recorder.select_notifications(start=1, limit=100_000)
    return [to_record(app.mapper.to_domain_event(n), position=n.id) for n in notifications]


@pytest.fixture(scope="module")
def records() -> list[EventRecord]:
    from test_credit_migration import credit_scenario  # refunds, old credit

    return run_scenario() + credit_scenario()


def test_the_scenario_emits_every_event_type(records: list[EventRecord]) -> None:
    missing = set(model.event_classes()) - {r.name for r in records}
    assert not missing, f"extend run_scenario to emit {sorted(missing)}"


def test_every_event_round_trips(records: list[EventRecord], events: EventCodec) -> None:
    for record in records:
        decoded = events.decode(events.encode(record))
        assert decoded == dataclasses.replace(record, position=None), record.name


def test_a_consumer_needs_only_the_avsc_files(
    records: list[EventRecord], events: EventCodec
) -> None:
    """Plain fastavro, no project code: load the schema, skip the 10-byte header, read."""
    by_name = {r.name: r for r in records}
    for name, record in by_name.items():
        data = events.encode(record)
        path = registry.AVRO_DIR / f"{model.event_fullname(name)}.avsc"
        schema = load_schema(str(path))
        datum = schemaless_reader(io.BytesIO(data[10:]), schema, None)
        assert datum["event_id"] == record.event_id
        assert str(datum["aggregate_id"]) == record.aggregate_id
        assert datum["at"] == record.at
        assert set(datum["data"]) == set(record.data)


def test_meta_outcome_and_lines_survive_exactly(
    records: list[EventRecord], events: EventCodec
) -> None:
    receipt = next(r for r in records if r.name == "CommandReceipt.Applied")
    assert isinstance(events.decode(events.encode(receipt)).data["outcome"], dict)
    invoice = next(r for r in records if r.name == "Subscription.Invoiced")
    assert any(line["period_start"] is None for line in invoice.data["lines"])  # tax line
    assert events.decode(events.encode(invoice)).data["lines"] == invoice.data["lines"]
    odd = dataclasses.replace(receipt, meta={"command": "allocate_numbers", "shard": "7"})
    assert events.decode(events.encode(odd)).meta == odd.meta


def test_encoding_refuses_data_the_schema_does_not_know(
    records: list[EventRecord], events: EventCodec
) -> None:
    paused = next(r for r in records if r.name == "Subscription.Paused")
    with pytest.raises(EncodeError, match="more fields"):
        events.encode(dataclasses.replace(paused, data={**paused.data, "surprise": 1}))
    with pytest.raises(EncodeError, match="no schema"):
        events.encode(dataclasses.replace(paused, type="Teleported"))
    with pytest.raises(TypeError):
        events.encode(None)  # type: ignore[arg-type]


def test_fingerprints_and_writer_schemas(events: EventCodec, commands: CommandCodec) -> None:
    full = model.event_fullname("Subscription.Renewed")
    fp = events.fingerprint("Subscription.Renewed")
    assert fp == events.fingerprint(full) == registry.fingerprint(registry.load_current(full))
    assert events.writer_schemas()[fp]["name"] == full
    assert set(events.writer_schemas()).isdisjoint(commands.writer_schemas())


def test_event_key_is_the_aggregate_id(records: list[EventRecord]) -> None:
    assert event_key(records[0]) == records[0].aggregate_id.encode()


# ---- errors -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pause_bytes(commands: CommandCodec) -> bytes:
    return commands.encode(c.Pause(command_id="x", at=T0, subscription_id="s"))


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (None, "bad_header", "None"),
        (b"", "bad_header", "too short"),
        (b"\xc3\x01\x00", "bad_header", "too short"),
        (b"\x00\x00\x00\x00\x01hello world", "bad_header", "bad magic"),
        (
            b"\xc3\x01" + bytes.fromhex("0123456789abcdef") + b"\x00",
            "unknown_schema",
            "0123456789abcdef",
        ),
    ],
)
def test_bad_bytes_give_a_clear_decode_error(
    data: bytes | None, code: str, words: str, commands: CommandCodec, events: EventCodec
) -> None:
    for codec in (commands, events):
        with pytest.raises(DecodeError, match=words) as caught:
            codec.decode(data)
        assert caught.value.code == code
        assert isinstance(caught.value, ValueError)


def test_garbage_body_and_trailing_bytes(pause_bytes: bytes, commands: CommandCodec) -> None:
    with pytest.raises(DecodeError, match=r"does not decode as subledger\.commands\.Pause"):
        commands.decode(pause_bytes[:10] + b"\xff\xff\xff\xff")
    with pytest.raises(DecodeError, match="does not decode"):
        commands.decode(pause_bytes[:-3])
    with pytest.raises(DecodeError, match="trailing"):
        commands.decode(pause_bytes + b"\x00")


def test_a_command_is_not_an_event(pause_bytes: bytes, events: EventCodec) -> None:
    with pytest.raises(DecodeError, match="unknown writer schema fingerprint") as caught:
        events.decode(pause_bytes)
    assert pause_bytes[2:10].hex() in caught.value.reason


@settings(max_examples=50, deadline=None)
@given(
    meta=st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=6),
    at=st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5))])).filter(
        lambda d: datetime(1, 1, 2, tzinfo=UTC) < d < datetime(9999, 12, 30, tzinfo=UTC)
    ),
)
def test_any_meta_and_any_aware_time_survive(meta: dict[str, str], at: datetime) -> None:
    codec = event_codec()
    record = EventRecord(
        event_id="e", aggregate_type="Subscription", type="Paused",
        aggregate_id="6f1d2c4e-5b1a-4c1e-9a53-2f7d5e0b9c11", version=3, at=at, meta=meta,
        data={"customer_id": "cus", "status": "paused", "mrr": 0},
    )  # fmt: skip
    decoded = codec.decode(codec.encode(record))
    assert decoded == record
    assert decoded.at.tzinfo == UTC  # the same instant, always read back in UTC


def test_an_event_must_be_what_its_schema_says(events: EventCodec) -> None:
    record = EventRecord(
        event_id="e", aggregate_type="Subscription", type="Paused",
        aggregate_id="6f1d2c4e-5b1a-4c1e-9a53-2f7d5e0b9c11", version=3, at=T0, meta={},
        data={"customer_id": "cus", "status": "paused", "mrr": 0},
    )  # fmt: skip
    data = events.encode(record)
    lying = data.replace(b"\x0cPaused", b"\x0cPaurus")  # same length, another type name
    with pytest.raises(DecodeError, match=r"says it is subledger\.events\.SubscriptionPaurus"):
        events.decode(lying)


def test_decode_errors_keep_their_code_across_processes() -> None:
    error = pickle.loads(pickle.dumps(DecodeError("why", "unknown_schema")))
    assert (error.reason, error.code) == ("why", "unknown_schema")
