"""Webhook rules without a network: the event -> type table, what a body may carry, the
retry schedule, the signature, URLs, and the secrets' store."""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import typing
from datetime import UTC, datetime, timedelta

import pytest

from adapters.http import signature, verify
from adapters.secrets import SecretStore, SecretsUnreadable
from domain.errors import InvalidInput
from domain.webhooks.retry import RetryPolicy
from domain.webhooks.types import (
    FIELDS,
    TYPES,
    WEBHOOK_TYPES,
    check_types,
    check_url,
    webhook_data,
)
from schemas.model import event_classes

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_the_issue_s_types_are_all_there_and_each_event_has_one() -> None:
    wanted = {
        "customer.created",
        "subscription.created",
        "subscription.updated",
        "subscription.canceled",
        "subscription.churned",
        "invoice.created",
        "invoice.paid",
        "invoice.payment_failed",
        "invoice.upcoming",
        "credit_note.created",
    }
    assert wanted <= set(WEBHOOK_TYPES)
    assert TYPES["Subscription.RenewalReminderIssued"] == "invoice.upcoming"
    assert TYPES["Subscription.CreditNoteIssued"] == "credit_note.created"
    assert TYPES["Subscription.PaymentFailed"] == "invoice.payment_failed"


def test_every_mapped_event_and_every_copied_field_exists() -> None:
    """A misspelt event would never be sent; a misspelt field silently left out."""
    classes = event_classes()
    assert set(TYPES) <= set(classes), sorted(set(TYPES) - set(classes))
    assert set(FIELDS) == set(TYPES)
    for name, fields in FIELDS.items():
        hints = typing.get_type_hints(classes[name])
        assert set(fields) <= set(hints), (name, sorted(set(fields) - set(hints)))


def test_a_body_carries_ids_and_whitelisted_fields_never_the_personal_ciphertext() -> None:
    data = {
        "customer_id": "cus_1",
        "country": "GB",
        "personal": "a1b2c3",  # name, email, token: encrypted, and still never sent
    }
    assert webhook_data("Customer.Registered", data) == {"customer_id": "cus_1", "country": "GB"}
    invoiced = {
        "customer_id": "cus_1",
        "status": "active",
        "mrr": 1000,
        "number": "INV-000001",
        "currency": "USD",
        "amount_due": 1200,
        "period_start": T0,
        "unknown_later_field": "x",
    }
    body = webhook_data("Subscription.Invoiced", invoiced, subscription_id="sub_1")
    assert body == {
        "customer_id": "cus_1",
        "subscription_id": "sub_1",
        "status": "active",
        "mrr": 1000,
        "number": "INV-000001",
        "currency": "USD",
        "amount_due": 1200,
        "period_start": "2025-03-01T12:00:00Z",
    }


def test_a_credit_note_names_its_invoice_as_invoice_number() -> None:
    note = {"customer_id": "c", "number": "CN-000001", "invoice": "INV-000007", "amount": 500}
    body = webhook_data("Subscription.CreditNoteIssued", note, subscription_id="s")
    assert body["number"] == "CN-000001"
    assert body["invoice_number"] == "INV-000007"
    assert "invoice" not in body


def test_retries_back_off_five_fold_and_stop_three_days_after_the_first_attempt() -> None:
    policy = RetryPolicy()
    assert [policy.delay(n).total_seconds() for n in range(1, 8)] == [
        60,
        300,
        1500,
        7500,
        37500,
        43200,  # capped at 12 hours
        43200,
    ]
    attempts = [T0]
    while (nxt := policy.next_attempt(T0, attempts[-1], len(attempts))) is not None:
        attempts.append(nxt)
    # 0, +1m, +6m, +31m, +2h36m, +13h01m, then every 12 h while within 72 h
    assert len(attempts) == 10
    assert attempts[-1] - T0 <= timedelta(days=3)
    assert attempts[-1] + policy.delay(len(attempts)) - T0 > timedelta(days=3)


def test_a_replayed_round_counts_its_window_from_its_own_first_attempt() -> None:
    policy = RetryPolicy()
    later = T0 + timedelta(days=10)
    assert policy.next_attempt(later, later, 1) == later + timedelta(minutes=1)
    assert policy.next_attempt(T0, later, 1) is None


def test_a_policy_out_of_range_is_refused() -> None:
    with pytest.raises(InvalidInput):
        RetryPolicy(first_delay_s=-1)
    with pytest.raises(InvalidInput):
        RetryPolicy(give_up_after_s=365 * 24 * 3600)


def test_the_signature_is_hmac_sha256_of_timestamp_dot_raw_body() -> None:
    body = b'{"id":"evt_1","type":"invoice.paid"}'
    header = signature("whsec_test_secret_1234", body, 1_740_830_400)
    mac = hmac.new(b"whsec_test_secret_1234", b"1740830400." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1740830400,v1={mac}"
    assert verify("whsec_test_secret_1234", body, header, now=1_740_830_400 + 10)
    assert not verify("whsec_test_secret_1234", body + b" ", header, now=1_740_830_410)
    assert not verify("another_secret_12345", body, header, now=1_740_830_410)
    assert not verify("whsec_test_secret_1234", body, header, now=1_740_830_400 + 301)
    assert not verify("whsec_test_secret_1234", body, "v1=" + mac, now=1_740_830_400)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://crm.example.com/hook",
        "https://user:pass@crm.example.com/hook",
        "https:///no-host",
        "https://crm.example.com/a b",
        "https://crm.example.com/hook#frag",
        "crm.example.com/hook",
        "https://crm.example.com:99999/hook",
        "https://crm.example.com/" + "a" * 2048,
    ],
)
def test_urls_that_are_not_plain_http_endpoints_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput):
        check_url(url)


def test_endpoint_urls_and_types_that_are_fine() -> None:
    assert check_url("https://crm.example.com/hooks/subledger?x=1") is not None
    assert check_url("http://127.0.0.1:8080/hook") is not None
    assert check_types(("invoice.paid", "customer.created")) == ("invoice.paid", "customer.created")
    with pytest.raises(InvalidInput, match="unknown webhook type"):
        check_types(("invoice.pad",))
    with pytest.raises(InvalidInput, match="twice"):
        check_types(("invoice.paid", "invoice.paid"))


def test_secrets_are_stored_encrypted_under_their_own_key(tmp_path) -> None:
    path = tmp_path / "keys.sqlite"
    store = SecretStore(f"sqlite:///{path}")
    assert store.put_new("we_1", "a-very-secret-signing-key")
    assert store.get("we_1") == "a-very-secret-signing-key"
    assert store.put_new("we_1", "a-very-secret-signing-key")  # the same: fine
    assert not store.put_new("we_1", "another-secret-value-x")  # never replaced
    assert store.get("we_1") == "a-very-secret-signing-key"
    store.close()
    raw = sqlite3.connect(path).execute("SELECT endpoint_id, secret FROM webhook_secrets")
    ((endpoint, sealed),) = raw.fetchall()
    assert endpoint == "we_1"
    assert "a-very-secret" not in sealed and b"a-very-secret" not in bytes.fromhex(sealed)
    assert SecretStore(f"sqlite:///{path}").get("we_1") == "a-very-secret-signing-key"


def test_secrets_under_another_key_or_moved_to_another_endpoint_do_not_open(tmp_path) -> None:
    from eventsourcing.cryptography import AESCipher

    path = tmp_path / "keys.sqlite"
    key = AESCipher.create_key(32)
    store = SecretStore(f"sqlite:///{path}", key)
    store.put_new("we_1", "a-very-secret-signing-key")
    with pytest.raises(SecretsUnreadable, match="SUBLEDGER_WEBHOOK_SECRETS_KEY"):
        SecretStore(f"sqlite:///{path}", AESCipher.create_key(32)).get("we_1")
    db = sqlite3.connect(path)
    db.execute("INSERT INTO webhook_secrets SELECT 'we_2', secret FROM webhook_secrets")
    db.commit()
    with pytest.raises(SecretsUnreadable, match="not its own"):
        store.get("we_2")
    assert store.delete("we_1") and store.get("we_1") is None


def test_the_readme_s_receiver_example_verifies_our_signature_and_refuses_a_forgery() -> None:
    """The 10-line example users copy must work against what the sender really sends."""
    import time
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("**Verifying a delivery.**") :]
    code = section[section.index("```python") + len("```python") : section.index("```\n\n")]
    assert len(code.strip().splitlines()) <= 10
    scope: dict[str, typing.Any] = {}
    exec(code, scope)
    body = b'{"id":"evt_1","type":"invoice.paid","created":1,"data":{}}'
    header = signature("whsec_readme_example_1", body, int(time.time()))
    assert scope["verify"]("whsec_readme_example_1", body, header)["id"] == "evt_1"
    with pytest.raises(ValueError, match="bad webhook signature"):
        scope["verify"]("whsec_readme_example_1", body.replace(b"paid", b"void"), header)
    stale = signature("whsec_readme_example_1", body, int(time.time()) - 3600)
    with pytest.raises(ValueError, match="bad webhook signature"):
        scope["verify"]("whsec_readme_example_1", body, stale)


def test_the_readme_table_names_every_event_and_type_sent() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme[readme.index("| ledger event | webhook type |") :]
    table = table[: table.index("\n\n")]
    for event, webhook_type in TYPES.items():
        assert f"`{webhook_type}`" in table, webhook_type
        assert f"`{event.partition('.')[2]}`" in table or f"`{event}`" in table, event
