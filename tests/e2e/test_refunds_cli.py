"""Refunds and credit through the installed `subledger` command, embedded: a downgrade's
credit outlives its subscription, a refund is a credit note the payments worker refunds at
the (sandbox) gateway after commit, errors record nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from test_cli import as_csv, as_json, head, runner


def test_credit_and_refunds_as_a_user_sees_them(tmp_path: Path) -> None:
    data_dir = tmp_path / "book"
    run = runner(data_dir)
    at = "--at"
    run(
        "plan",
        "define",
        "pro",
        "--name",
        "Pro",
        "--pricing",
        "flat",
        "--price",
        "30.00",
        "--currency",
        "USD",
        at,
        "2025-01-01",
    )
    run(
        "plan",
        "define",
        "basic",
        "--name",
        "Basic",
        "--pricing",
        "flat",
        "--price",
        "10.00",
        "--currency",
        "USD",
        at,
        "2025-01-01",
    )
    run(
        "customer",
        "register",
        "ada",
        "--name",
        "Ada",
        "--email",
        "ada@example.com",
        "--payment-token",
        "tok_visa",
        at,
        "2025-01-01",
    )
    run("subscribe", "ada", "pro", "--subscription-id", "s1", at, "2025-01-01")
    run("change-plan", "s1", "basic", at, "2025-01-20")  # 12 of 31 days: -11.61 + 3.87
    run("cancel", "s1", "--immediately", at, "2025-01-21")

    shown = as_json(run("customer", "show", "ada", "--format", "json"))
    assert shown["balance"] == {"USD": {"outstanding": 0, "credit": 774}}

    run("subscribe", "ada", "basic", "--subscription-id", "s2", at, "2025-01-25")
    invoices = as_json(run("invoices", "list", "--subscription", "s2", "--format", "json"))
    assert [(i["total"], i["credit_applied"], i["amount_due"], i["status"]) for i in invoices] == [
        (1000, 774, 226, "paid")
    ]

    refunded = as_json(
        run(
            "refund",
            invoices[0]["number"],
            "--amount",
            "1.26",
            "--reason",
            "goodwill",
            at,
            "2025-01-26",
            "--format",
            "json",
        )
    )
    assert (refunded["credit_note"], refunded["amount"], refunded["refund"]) == (
        "CN-000001",
        126,
        "pending",  # asked: the worker refunds right after the command is recorded
    )
    notes = as_csv(run("credit-notes", "list", "--customer", "ada", "--format", "csv"))
    assert [(n["number"], n["amount"], n["refund_status"]) for n in notes] == [
        ("CN-000001", "126", "succeeded")
    ]
    assert notes[0]["refund_reference"].startswith("re_")
    gateway = sqlite3.connect(data_dir / "gateway.sqlite")
    try:
        assert gateway.execute("SELECT idempotency_key, amount, calls FROM refunds").fetchall() == [
            ("CN-000001:refund", 126, 1)
        ]
    finally:
        gateway.close()

    before = head(run)
    too_much = run(
        "refund", invoices[0]["number"], "--amount", "1.01", at, "2025-01-27", check=False
    )
    assert too_much.returncode != 0
    assert too_much.stderr.startswith("error: ")
    assert "100 minor units of USD left" in too_much.stderr
    assert len(too_much.stderr.strip().splitlines()) == 1
    unknown = run("refund", "INV-999999", check=False)
    assert unknown.returncode != 0 and "unknown invoice 'INV-999999'" in unknown.stderr
    assert head(run) == before  # nothing recorded

    granted = as_json(
        run(
            "credit",
            "grant",
            "ada",
            "--amount",
            "5.00",
            "--currency",
            "usd",
            "--reason",
            "sorry",
            at,
            "2025-01-28",
            "--format",
            "json",
        )
    )
    assert granted["credit_balance"] == 500
    history = as_csv(run("credit", "history", "ada", "--format", "csv"))
    assert [(h["kind"], h["amount"], h["credit"], h["source"]) for h in history] == [
        ("granted", "774", "774", "proration"),
        ("applied", "-774", "0", "invoice"),
        ("granted", "500", "500", "grant"),
    ]
    table = run("credit-notes", "list").stdout
    assert "CN-000001" in table and "1.26" in table
