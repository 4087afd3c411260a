"""Notifications as a customer receives them: the CLI as a user runs it, a real SMTP server
(aiosmtpd) on a free port, email delivered at the end of each command that recorded events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from notify_support import SMTPServer, body

SUBLEDGER = str(Path(sys.executable).with_name("subledger"))

Run = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    with SMTPServer() as server:
        yield server


def cli(data_dir: Path, smtp: SMTPServer, **env: str) -> Run:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    base.update(
        SUBLEDGER_ACTOR="support@example.com",
        SUBLEDGER_SMTP_URL=smtp.url,
        SUBLEDGER_SMTP_FROM="billing@example.com",
        COLUMNS="200",
        **env,
    )

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [SUBLEDGER, "--data-dir", str(data_dir), *args],
            capture_output=True,
            text=True,
            env=base,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        if check:
            assert proc.returncode == 0, f"{args}: {proc.stderr}"
        return proc

    return run


def book(run: Run, token: str = "tok_visa") -> None:
    run("plan", "define", "annual", "--name", "Pro Annual", "--price", "120.00",
        "--currency", "USD", "--interval", "year", "--at", "2025-01-01")  # fmt: skip
    run("plan", "define", "monthly", "--name", "Pro Monthly", "--price", "10.00",
        "--currency", "USD", "--at", "2025-01-01")  # fmt: skip
    run("customer", "register", "cus_a", "--name", "Ada Lovelace", "--email", "ada@example.com",
        "--payment-token", token, "--at", "2025-01-01")  # fmt: skip
    run("customer", "register", "cus_m", "--name", "Max Planck", "--email", "max@example.com",
        "--payment-token", "tok_visa", "--at", "2025-01-01")  # fmt: skip


def notifications(run: Run, *args: str) -> list[dict]:
    return json.loads(run("notifications", "list", *args, "--format", "json").stdout)


def test_an_annual_subscriber_gets_one_reminder_30_days_before_renewal_then_a_receipt(
    tmp_path: Path, smtp: SMTPServer
) -> None:
    run = cli(tmp_path / "book", smtp)
    book(run)
    run("subscribe", "cus_a", "annual", "--subscription-id", "sub_a", "--at", "2025-01-02")
    run("subscribe", "cus_m", "monthly", "--subscription-id", "sub_m", "--at", "2025-01-02")
    inbox = smtp.inbox
    assert [m["Subject"] for m in inbox.messages if m["To"].addresses[0].username == "ada"] == [
        "Welcome, Ada Lovelace",
        "Receipt for invoice INV-000001: 120.00 USD paid",
    ]
    run("clock", "advance", "--to", "2025-12-02T23:59:59Z")  # the day before 30 days before
    assert not [m for m in inbox.with_template("renewal_reminder") if "ada" in m["To"]]
    run("clock", "advance", "--to", "2025-12-03")  # Jan 2 2026 - 30 days
    (reminder,) = [m for m in inbox.with_template("renewal_reminder") if "ada" in m["To"]]
    assert reminder["Subject"] == "Your subscription renews on 2026-01-02"
    assert "renews on 2026-01-02\nfor 120.00 USD" in body(reminder)
    run("clock", "advance", "--to", "2026-01-03")
    ada = [m for m in inbox.messages if "ada" in m["To"]]
    assert [m["X-Subledger-Template"] for m in ada] == [
        "welcome",
        "receipt",
        "renewal_reminder",  # exactly one for the renewal
        "receipt",  # after it
    ]
    receipt = ada[-1]
    assert receipt["Subject"].endswith(": 120.00 USD paid")  # the renewal's invoice
    assert receipt["Date"] and receipt["Message-ID"] != ada[1]["Message-ID"]
    text = body(receipt)
    assert "Billing period: 2026-01-02 to 2027-01-02." in text and "Paid" in text
    # the monthly subscriber: each reminder 7 days before each renewal
    max_reminders = [m for m in inbox.with_template("renewal_reminder") if "max" in m["To"]]
    assert [m["Subject"] for m in max_reminders[:2]] == [
        "Your subscription renews on 2025-02-02",
        "Your subscription renews on 2025-03-02",
    ]
    assert len(max_reminders) == 12  # Feb 2 2025 .. Jan 2 2026
    sent = notifications(run, "--customer", "cus_m", "--channel", "email")
    reminder_rows = [r for r in sent if r["template"] == "renewal_reminder"]
    assert reminder_rows[0]["created_at"] == "2025-01-26T00:00:00Z"  # Feb 2 - 7 days
    assert {r["status"] for r in sent} == {"sent"}


def test_a_declined_card_gets_a_payment_failed_message_per_attempt(
    tmp_path: Path, smtp: SMTPServer
) -> None:
    run = cli(tmp_path / "book", smtp)
    book(run, token="tok_chargeDeclinedInsufficientFunds")
    run("subscribe", "cus_a", "monthly", "--subscription-id", "sub_a", "--at", "2025-01-02")
    run("clock", "advance", "--to", "2025-01-20")
    failed = smtp.inbox.with_template("payment_failed")
    payments = json.loads(
        run("payments", "list", "--subscription", "sub_a", "--format", "json").stdout
    )
    attempts = [p for p in payments if p["outcome"] == "failed"]
    assert len(attempts) == 5  # the first charge and four retries (1, 3, 5, 7 days)
    assert len(failed) == len(attempts)
    assert {m["Subject"] for m in failed} == {"Your payment for invoice INV-000001 failed"}
    bodies = [body(m) for m in failed]
    assert all("your card has insufficient funds" in b for b in bodies)
    assert "We will try again on 2025-01-03." in bodies[0]
    assert "This was the last attempt." in bodies[-1]
    (ended,) = smtp.inbox.with_template("cancellation_confirmed")
    assert "could not collect its payment" in body(ended)


def test_a_received_email_has_safe_headers_and_its_message_id(
    tmp_path: Path, smtp: SMTPServer
) -> None:
    run = cli(tmp_path / "book", smtp)
    book(run)
    (welcome,) = smtp.inbox.with_template("welcome")[:1]
    rows = notifications(run, "--customer", "cus_a", "--channel", "email")
    assert welcome["Message-ID"] == f"<{rows[0]['message_id']}@example.com>"
    assert (welcome["From"], welcome["To"]) == (
        "billing@example.com",
        "Ada Lovelace <ada@example.com>",
    )
    assert welcome["X-Envelope-To"] == "ada@example.com"
    # a customer whose name would add a header if it could: refused at the door
    bad = run("customer", "register", "cus_x", "--name", "Eve\r\nBcc: all@example.com",
              "--email", "eve@example.com", "--payment-token", "tok_visa", check=False)  # fmt: skip
    assert bad.returncode != 0 and "control characters" in bad.stderr


def test_failed_delivery_is_retried_with_the_same_message_id(
    tmp_path: Path, smtp: SMTPServer
) -> None:
    run = cli(tmp_path / "book", smtp, SUBLEDGER_NOTIFY_BACKOFF="1")
    smtp.inbox.fail_next = 1  # the server answers the next message 451
    run("customer", "register", "cus_a", "--name", "Ada Lovelace", "--email", "ada@example.com",
        "--payment-token", "tok_visa", "--at", "2025-01-01")  # fmt: skip
    (row,) = notifications(run, "--customer", "cus_a", "--channel", "email")
    assert (row["status"], row["attempts"], row["next_attempt_at"]) != ("sent", 1, None)
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert row["last_error"].startswith("message refused: 451")
    assert smtp.inbox.messages == []
    time.sleep(1.1)  # the backoff runs on the wall clock
    out = json.loads(run("notifications", "deliver", "--format", "json").stdout)
    assert out["sent"] == 1
    (row,) = notifications(run, "--customer", "cus_a", "--channel", "email")
    assert (row["status"], row["attempts"]) == ("sent", 2)
    assert smtp.inbox.ids() == [f"<{row['message_id']}@example.com>"]


def test_a_rebuild_sends_nothing_again_and_simulate_sends_nothing_unless_asked(
    tmp_path: Path, smtp: SMTPServer
) -> None:
    run = cli(tmp_path / "book", smtp)
    book(run)
    run("subscribe", "cus_a", "monthly", "--subscription-id", "sub_a", "--at", "2025-01-02")
    received = len(smtp.inbox.messages)
    run("projections", "rebuild", "notifications")
    out = json.loads(run("notifications", "deliver", "--format", "json").stdout)
    assert out["sent"] == 0 and len(smtp.inbox.messages) == received
    sim = cli(tmp_path / "sim", smtp)
    sim("simulate", "--customers", "3", "--months", "1", "--seed", "5", "--format", "json")
    # a command of the user's (moving the clock to now: the simulated customers renew, and
    # their messages wait with the rest): only its own customer's message goes
    sim("customer", "register", "cus_n", "--name", "Nia", "--email", "nia@example.com",
        "--payment-token", "tok_visa")  # fmt: skip
    assert [m["To"] for m in smtp.inbox.messages[received:]] == ["Nia <nia@example.com>"]
    received += 1
    waiting = notifications(sim, "--channel", "email", "--status", "pending")
    assert waiting
    asked = json.loads(sim("notifications", "deliver", "--include-simulated", "--format",
                           "json").stdout)  # fmt: skip
    assert asked["sent"] >= len(waiting) and len(smtp.inbox.messages) == received + len(waiting)


def test_templates_are_overridden_from_the_templates_dir(tmp_path: Path, smtp: SMTPServer) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "welcome.txt").write_text(
        "Subject: Hello {{ customer.name }} from our shop\n\nYour id is {{ customer.id }}.\n"
    )
    run = cli(tmp_path / "book", smtp, SUBLEDGER_TEMPLATES_DIR=str(templates))
    book(run)
    first = smtp.inbox.with_template("welcome")[0]
    assert first["Subject"] == "Hello Ada Lovelace from our shop"
    assert body(first) == "Your id is cus_a.\n"


def test_the_in_app_inbox_and_the_customer_timeline(tmp_path: Path, smtp: SMTPServer) -> None:
    run = cli(tmp_path / "book", smtp)
    book(run)
    run("subscribe", "cus_a", "monthly", "--subscription-id", "sub_a", "--at", "2025-01-02")
    run("customer", "note", "cus_a", "--channel", "phone", "--text", "Asked for an annual plan",
        "--actor", "agent-7", "--at", "2025-01-03")  # fmt: skip
    inbox = notifications(run, "--customer", "cus_a", "--channel", "in_app")
    assert [(m["template"], m["status"], m["read_at"]) for m in inbox] == [
        ("welcome", "sent", None),
        ("receipt", "sent", None),
    ]
    shown = json.loads(run("notifications", "read", inbox[1]["message_id"], "--at", "2025-01-04",
                           "--format", "json").stdout)  # fmt: skip
    assert shown["subject"] == "Receipt for invoice INV-000001: 10.00 USD paid"
    assert "Hello Ada Lovelace" in shown["body"] and shown["read_at"]
    timeline = json.loads(run("customer", "timeline", "cus_a", "--format", "json").stdout)
    kinds = [(r["kind"], r["what"]) for r in timeline]
    assert kinds.index(("event", "Customer.Registered")) < kinds.index(("invoice", "INV-000001"))
    assert ("payment", "INV-000001") in kinds
    assert ("notification", "receipt (email)") in kinds
    (note,) = [r for r in timeline if r["kind"] == "note"]
    assert (note["at"], note["what"], note["detail"]) == (
        "2025-01-03T00:00:00Z",
        "phone note",
        "agent-7: Asked for an annual plan",
    )
    assert [r["at"] for r in timeline] == sorted(r["at"] for r in timeline)
    receipt = next(r for r in timeline if r["what"] == "receipt (in_app)")
    assert receipt["status"] == "sent" and receipt["detail"].endswith("read")
    table = run("customer", "timeline", "cus_a").stdout
    assert "Asked for an annual plan" in table and "INV-000001" in table
