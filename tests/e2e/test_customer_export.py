"""`subledger customer export ID`: a subject-access request answered from the CLI, before
and after erasure."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from test_cli import runner

NOTE = "called about VAT; lives at 1 Secret Lane"


@pytest.fixture
def book(tmp_path: Path) -> Any:
    run = runner(tmp_path / "book")
    run("plan", "define", "basic", "--name", "Basic", "--pricing", "flat", "--price", "10.00",
        "--currency", "USD", "--at", "2024-01-01")  # fmt: skip
    run("customer", "register", "ada", "--name", "Ada Lovelace", "--email", "ada@example.com",
        "--payment-token", "tok_visa", "--preference", "notify.email=off",
        "--at", "2024-01-01")  # fmt: skip
    run("customer", "register", "eve", "--name", "Eve", "--email", "eve@example.com",
        "--payment-token", "tok_visa", "--at", "2024-01-01")  # fmt: skip
    run("subscribe", "ada", "basic", "--subscription-id", "s1", "--at", "2024-01-01")
    run("customer", "note", "ada", "--channel", "phone", "--text", NOTE, "--at", "2024-01-02",
        "--actor", "support-desk")  # fmt: skip
    run("clock", "advance", "--to", "2024-02-05")
    return run


def test_the_export_holds_the_decrypted_profile_note_and_history(book: Any) -> None:
    data = json.loads(book("customer", "export", "ada").stdout)
    assert data["erased"] is False
    assert data["profile"] == {
        "customer_id": "ada",
        "country": "US",
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "payment_token": "tok_visa",
        "preferences": {"notify.email": "off"},
    }
    assert data["support_notes"] == [
        {"at": "2024-01-02T00:00:00Z", "channel": "phone", "actor": "support-desk", "text": NOTE}
    ]
    assert [s["subscription_id"] for s in data["subscriptions"]] == ["s1"]
    assert [(i["number"], i["total"], i["status"]) for i in data["invoices"]] == [
        ("INV-000001", 1000, "paid"),
        ("INV-000002", 1000, "paid"),
    ]
    assert [(p["number"], p["amount"], p["outcome"]) for p in data["payments"]] == [
        ("INV-000001", 1000, "succeeded"),
        ("INV-000002", 1000, "succeeded"),
    ]
    templates = {(n["template"], n["channel"]) for n in data["notifications"]}
    assert ("welcome", "in_app") in templates and ("receipt", "email") in templates
    assert {"status", "created_at", "attempts"} <= set(data["notifications"][0])
    names = [e["event"] for e in data["events"]]
    assert names[:2] == ["Customer.Registered", "Subscription.Subscribed"]
    assert "Customer.NoteRecorded" in names and "Subscription.Renewed" in names
    note = data["events"][names.index("Customer.NoteRecorded")]
    assert (note["actor"], note["data"]) == (
        "support-desk",
        {"customer_id": "ada", "channel": "phone"},
    )
    for event in data["events"]:  # ciphertext is never exported: the profile is, decrypted
        assert not {"personal", "note"} & set(event["data"]), event
    assert {e["data"].get("customer_id") for e in data["events"]} == {"ada"}  # not eve's


def test_after_erasure_only_ids_amounts_and_dates_remain(book: Any, tmp_path: Path) -> None:
    book("customer", "erase", "ada", "--at", "2024-02-06")
    out = tmp_path / "ada.json"
    proc = book("customer", "export", "ada", "--output", str(out))
    assert proc.stdout.strip() == f"customer ada: exported to {out}"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    text = out.read_text()
    for personal in ("Ada Lovelace", "ada@example.com", "tok_visa", "Secret Lane", "notify.email"):
        assert personal not in text
    data = json.loads(text)
    assert data["erased"] is True
    assert data["profile"] == {"customer_id": "ada", "country": "US"}
    assert data["support_notes"] == [
        {"at": "2024-01-02T00:00:00Z", "channel": "phone", "actor": "support-desk"}
    ]
    assert [(i["number"], i["total"]) for i in data["invoices"]] == [
        ("INV-000001", 1000),
        ("INV-000002", 1000),
    ]
    assert data["events"][-1]["event"] == "Customer.Erased"


def test_an_unknown_customer_is_one_line(book: Any) -> None:
    proc = book("customer", "export", "nobody", check=False)
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.splitlines() == ["error: unknown customer 'nobody'"]
