"""The notification rules as pure functions: reminder lead times, who gets what on which
channel, message ids, retries with backoff, header values, templates, the SMTP URL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapters.smtp import build_message, parse_smtp_url
from consumers.templates import Renderer, TemplateProblem, names
from domain.errors import InvalidInput
from domain.notifications import KINDS, DeliveryPolicy, Email, message_id, wanted
from domain.notifications.messages import channels_of, decline_in_words
from domain.periods import Interval
from domain.subscription.schedule import ReminderLeads, is_annual

T0 = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("unit", "count", "days"),
    [
        ("year", 1, 30),  # a year or longer: the annual lead
        ("month", 12, 30),
        ("month", 24, 30),
        ("day", 365, 30),
        ("month", 1, 7),  # shorter: the short lead
        ("month", 6, 7),
        ("week", 2, 7),  # 14 days is twice 7: reminded
        ("week", 52, 7),  # 364 days: not a year
        ("week", 1, None),  # 7 days is shorter than twice 7: never
        ("day", 13, None),
    ],
)
def test_the_reminder_lead_depends_on_the_plan_s_period(unit, count, days) -> None:
    lead = ReminderLeads().for_interval(Interval(unit, count))
    assert lead == (timedelta(days=days) if days else None)


def test_a_plan_is_annual_from_a_year_of_periods() -> None:
    assert is_annual(Interval("year", 1)) and is_annual(Interval("month", 12))
    assert not is_annual(Interval("month", 11)) and not is_annual(Interval("week", 52))


def test_lead_times_are_settings_and_zero_turns_reminders_off() -> None:
    leads = ReminderLeads(days=15, annual_days=60)
    assert leads.for_interval(Interval("month", 1)) is None  # 28 days < 30
    assert leads.for_interval(Interval("month", 2)) == timedelta(days=15)
    assert leads.for_interval(Interval("year", 1)) == timedelta(days=60)
    assert ReminderLeads(days=0).for_interval(Interval("month", 1)) is None


def test_preferences_say_who_gets_what_and_legal_notices_always_go_by_email() -> None:
    off = {"notify.email": "off", "notify.in_app": "no", "notify.reminders": "false"}
    assert wanted("receipt", "email", off) == (True, "")
    assert wanted("cancellation_confirmed", "email", off) == (True, "")
    assert wanted("receipt", "in_app", off)[0] is False
    assert wanted("welcome", "email", off) == (
        False,
        "the customer turned this channel off (notify.email)",
    )
    assert wanted("renewal_reminder", "webhook", off)[1].endswith("(notify.reminders)")
    assert wanted("trial_ending", "email", {"notify.reminders": "off"})[0] is False
    for template in KINDS:  # on by default, whatever the kind
        assert all(wanted(template, ch, {})[0] for ch in channels_of(template))


def test_a_message_id_is_the_same_for_the_same_event_channel_and_template() -> None:
    a = message_id("evt-1", "email", "receipt")
    assert a == message_id("evt-1", "email", "receipt")
    others = {
        message_id("evt-1", "in_app", "receipt"),
        message_id("evt-1", "email", "welcome"),
        message_id("evt-2", "email", "receipt"),
    }
    assert a not in others and len(others) == 3


def test_the_webhook_channel_only_for_kinds_the_webhooks_worker_sends() -> None:
    assert channels_of("receipt") == ("email", "in_app", "webhook")
    assert channels_of("trial_ending") == ("email", "in_app")
    assert KINDS["receipt"].webhook_type == "invoice.paid"
    assert KINDS["renewal_reminder"].webhook_type == "invoice.upcoming"


def test_declines_in_words() -> None:
    assert decline_in_words("insufficient_funds") == "your card has insufficient funds"
    assert decline_in_words("expired_card", "Your card has expired.") == "your card has expired"
    assert decline_in_words("something_new", "The bank said no.") == "The bank said no."
    assert decline_in_words(None) == "your payment could not be completed"


def test_retries_back_off_exponentially_then_give_up() -> None:
    policy = DeliveryPolicy(attempts=5, backoff_s=60, max_backoff_s=300)
    waits = [policy.retry_at(n, T0) for n in range(1, 6)]
    assert waits == [
        T0 + timedelta(seconds=60),
        T0 + timedelta(seconds=120),
        T0 + timedelta(seconds=240),
        T0 + timedelta(seconds=300),  # capped
        None,  # the fifth attempt was the last
    ]


@pytest.mark.parametrize(
    "field", ["subject", "recipient", "sender", "recipient_name", "message_id"]
)
@pytest.mark.parametrize("evil", ["x\r\nBcc: all@example.com", "x\nBcc: a@b.c", "x\rY"])
def test_no_value_can_inject_a_header(field: str, evil: str) -> None:
    fields = {
        "message_id": "<m@example.com>",
        "sender": "billing@example.com",
        "recipient": "ada@example.com",
        "recipient_name": "Ada",
        "subject": "Hello",
        "body": "Line one\nLine two\n",
    }
    fields[field] = evil
    with pytest.raises(InvalidInput, match="one line"):
        Email(**fields)  # type: ignore[arg-type]


def test_the_message_has_the_headers_it_was_given_and_no_more() -> None:
    email = Email(
        message_id="<m-1@example.com>",
        sender="billing@example.com",
        recipient="ada@example.com",
        recipient_name='Ada "Countess" Lovelace',
        subject="Receipt for INV-000001",
        body="Bcc: not-a-header@example.com\n",
    )
    message = build_message(email)
    assert message["Message-ID"] == "<m-1@example.com>"
    assert message["To"] == '"Ada \\"Countess\\" Lovelace" <ada@example.com>'
    assert message["Bcc"] is None  # a body line is body
    assert message.get_content() == "Bcc: not-a-header@example.com\n"


def test_every_kind_has_a_packaged_template_that_renders(tmp_path: Path) -> None:
    assert names() == sorted(KINDS)
    context = {
        "customer": {"id": "cus_1", "name": "Ada"},
        "message": {"id": "m", "template": "x"},
        "subscription_id": "sub_1",
        "plan_id": "pro",
        "plan_name": "Pro",
        "currency": "USD",
        "amount": 1234,
        "expected_amount": 1000,
        "attempt": 2,
        "at": "2025-03-01T00:00:00Z",
        "renews_at": "2025-04-01T00:00:00Z",
        "trial_end": "2025-03-04T00:00:00Z",
        "cancel_at": "2025-04-01T00:00:00Z",
        "next_retry_at": None,
        "period_end": "2025-04-01T00:00:00Z",
        "from_plan_id": "basic",
        "quantity": 3,
        "kind": "involuntary",
        "reason": "requested_by_customer",
        "decline": "your card was declined",
        "credit_note": "CN-000001",
        "invoice_number": "INV-000001",
        "method": "refund",
        "lines": [{"description": "Refund", "amount": -1234}],
        "invoice": {
            "number": "INV-000001",
            "lines": [{"kind": "recurring", "description": "Pro", "amount": 1234}],
        },
    }
    renderer = Renderer()
    for template in KINDS:
        rendered = renderer.render(template, context)
        assert rendered.subject and "\n" not in rendered.subject
        assert "Ada" in rendered.body, template
    receipt = renderer.render("receipt", context)
    assert receipt.subject == "Receipt for invoice INV-000001: 12.34 USD paid"
    assert "Paid" in receipt.body and "12.34 USD" in receipt.body


def test_an_operator_s_template_overrides_the_packaged_one_and_cannot_break_headers(
    tmp_path: Path,
) -> None:
    (tmp_path / "welcome.txt").write_text("Subject: Hi {{ customer.name }}!\n\nCiao.\n")
    renderer = Renderer(tmp_path)
    rendered = renderer.render("welcome", {"customer": {"name": "Ada", "id": "c"}})
    assert (rendered.subject, rendered.body) == ("Hi Ada!", "Ciao.\n")
    assert Renderer().render("welcome", {"customer": {"name": "Ada", "id": "c"}}).subject == (
        "Welcome, Ada"
    )
    (tmp_path / "welcome.txt").write_text("Subject: Hi {{ customer.name }}\nBcc: x@y.z\n\nHi\n")
    with pytest.raises(TemplateProblem, match="one line"):
        Renderer(tmp_path).render("welcome", {"customer": {"name": "Ada", "id": "c"}})
    (tmp_path / "welcome.txt").write_text("Subject: {{ customer.nmae }}\n\nHi\n")
    with pytest.raises(TemplateProblem, match=r"welcome\.txt"):
        Renderer(tmp_path).render("welcome", {"customer": {"name": "Ada", "id": "c"}})
    (tmp_path / "welcome.txt").write_text("Subject: {{ ''.__class__.__mro__ }}\n\nHi\n")
    with pytest.raises(TemplateProblem):  # the sandbox: a template reads what it is given
        Renderer(tmp_path).render("welcome", {"customer": {"name": "Ada", "id": "c"}})


def test_the_smtp_url_says_where_and_how() -> None:
    plain = parse_smtp_url("smtp://mail.example.com")
    assert (plain.host, plain.port, plain.starttls, plain.tls, plain.username) == (
        "mail.example.com",
        25,
        False,
        False,
        None,
    )
    tls = parse_smtp_url("smtp://me%40x.io:p%3Ass@mail.example.com:587?starttls=1&timeout=3")
    assert (tls.port, tls.starttls, tls.username, tls.password, tls.timeout) == (
        587,
        True,
        "me@x.io",
        "p:ss",
        3.0,
    )
    assert parse_smtp_url("smtps://mail.example.com").port == 465
    for bad in ("http://mail.example.com", "smtp://", "mail.example.com:25"):
        with pytest.raises(ValueError, match="SUBLEDGER_SMTP_URL"):
            parse_smtp_url(bad)
