"""An auditor's reads through the installed `subledger` command, embedded: a customer's history
across their subscriptions with when each event was recorded, and state as of a past date."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
from test_cli import Run, as_csv, as_json, runner

OLD_BOOK = Path(__file__).resolve().parent.parent / "fixtures" / "book-0.1"


@pytest.fixture
def book(tmp_path: Path) -> Run:
    """Ada on Basic from Jan 1, moved to 3 seats on Jan 10 and 7 seats on Jan 20; a second
    subscription from Jan 5; her email changed on Jan 12."""
    run = runner(tmp_path / "book")
    at = "--at"
    run("plan", "define", "basic", "--name", "Basic", "--pricing", "flat", "--price", "10.00",
        "--currency", "USD", at, "2024-01-01")  # fmt: skip
    run("plan", "define", "seats", "--name", "Seats", "--price", "5.00", "--currency", "USD",
        at, "2024-01-01")  # fmt: skip
    run("customer", "register", "ada", "--name", "Ada", "--email", "ada@example.com",
        "--payment-token", "tok_visa", at, "2024-01-01")  # fmt: skip
    run("subscribe", "ada", "basic", "--subscription-id", "s1", at, "2024-01-01",
        "--command-id", "signup-ada")  # fmt: skip
    run("subscribe", "ada", "basic", "--subscription-id", "s2", at, "2024-01-05")
    run("change-plan", "s1", "seats", "--quantity", "3", at, "2024-01-10")
    run("customer", "update", "ada", "--email", "ada@new.example", at, "2024-01-12")
    run("change-plan", "s1", "seats", "--quantity", "7", at, "2024-01-20")
    return run


def test_subscription_show_as_of_a_date_between_two_plan_changes(book: Run) -> None:
    def state(when: str) -> tuple:
        row = as_json(book("subscription", "show", "s1", "--as-of", when, "--format", "json"))
        return row["plan_id"], row["quantity"], row["mrr"], row["as_of"]

    assert state("2024-01-05") == ("basic", 1, 1000, "2024-01-05T00:00:00Z")
    assert state("2024-01-15") == ("seats", 3, 1500, "2024-01-15T00:00:00Z")
    assert state("2024-01-20T00:00:00Z") == ("seats", 7, 3500, "2024-01-20T00:00:00Z")
    now = as_json(book("subscription", "show", "s1", "--format", "json"))
    assert (now["plan_id"], now["quantity"], now["mrr"]) == ("seats", 7, 3500)
    table = book("subscription", "show", "s1", "--as-of", "2024-01-15").stdout
    assert "seats" in table and "15.00" in table
    too_early = book("subscription", "show", "s1", "--as-of", "2023-12-31", check=False)
    assert too_early.returncode != 0 and too_early.stdout == ""
    assert too_early.stderr == (
        "error: subscription 's1' did not exist yet at 2023-12-31T00:00:00Z\n"
    )
    bad = book("subscription", "show", "s1", "--as-of", "last tuesday", check=False)
    assert bad.returncode != 0 and len(bad.stderr.splitlines()) == 1
    assert "--as-of" in bad.stderr


def test_customer_show_as_of_before_and_after_an_update(book: Run) -> None:
    before = as_json(book("customer", "show", "ada", "--as-of", "2024-01-02", "--format", "json"))
    after = as_json(book("customer", "show", "ada", "--as-of", "2024-01-13", "--format", "json"))
    assert (before["email"], before["subscriptions"]) == ("ada@example.com", ["s1"])
    assert (after["email"], after["subscriptions"]) == ("ada@new.example", ["s1", "s2"])
    assert before["balance"] == {"USD": {"outstanding": 0, "credit": 0}}
    early = book("customer", "show", "ada", "--as-of", "2023-06-01", check=False)
    assert early.returncode != 0
    assert early.stderr == "error: customer 'ada' did not exist yet at 2023-06-01T00:00:00Z\n"


def test_invoices_list_as_of_shows_what_was_issued_then(book: Run) -> None:
    def numbers(*args: str) -> list[tuple[str, str, int]]:
        rows = as_json(book("invoices", "list", *args, "--format", "json"))
        return [(r["subscription_id"], r["reason"], r["total"]) for r in rows]

    assert numbers("--as-of", "2023-12-31") == []
    assert numbers("--as-of", "2024-01-04") == [("s1", "subscription_create", 1000)]
    assert numbers("--as-of", "2024-01-15") == [
        ("s1", "subscription_create", 1000),
        ("s2", "subscription_create", 1000),
        ("s1", "proration", numbers("--subscription", "s1")[1][2]),
    ]
    assert numbers("--as-of", "2024-01-15", "--subscription", "s2") == [
        ("s2", "subscription_create", 1000)
    ]
    everything = as_json(book("invoices", "list", "--format", "json"))
    assert as_json(book("invoices", "list", "--as-of", "2100-01-01", "--format", "json")) == (
        everything
    )  # after the last event: exactly what the read model shows
    rows = as_csv(book("invoices", "list", "--as-of", "2024-01-04", "--format", "csv"))
    assert [(r["number"], r["status"], r["amount_paid"]) for r in rows] == [
        ("INV-000001", "paid", "1000")
    ]


def test_history_of_a_customer_spans_their_subscriptions(book: Run) -> None:
    rows = as_json(book("history", "--customer", "ada", "--format", "json"))
    assert {r["subscription_id"] for r in rows} == {None, "s1", "s2"}
    assert [r["at"] for r in rows] == sorted(r["at"] for r in rows)
    first = rows[0]
    assert (first["aggregate"], first["event"], first["version"]) == ("Customer", "Registered", 1)
    for sub_id in ("s1", "s2"):  # each subscription's events keep their own order
        versions = [r["version"] for r in rows if r["subscription_id"] == sub_id]
        assert versions == list(range(1, len(versions) + 1))
    signup = next(r for r in rows if r["subscription_id"] == "s1")
    assert (signup["event"], signup["command"], signup["command_id"]) == (
        "Subscribed",
        "Subscribe",
        "signup-ada",
    )
    assert (signup["actor"], signup["source"], signup["correlation_id"]) == (
        "e2e-user",
        "cli",
        "signup-ada",
    )
    paid = next(r for r in rows if r["event"] == "PaymentSucceeded")
    assert (paid["source"], paid["correlation_id"]) == ("payments", "signup-ada")
    assert all(r["recorded_at"].endswith("Z") for r in rows)  # new events: recorded time
    assert "data" in signup and signup["data"]["plan_id"] == "basic"
    csv_rows = as_csv(book("history", "--customer", "ada", "--format", "csv"))
    assert len(csv_rows) == len(rows)
    assert {"at", "recorded_at", "actor", "source", "command", "command_id", "correlation_id"} <= (
        set(csv_rows[0])
    )
    one = as_json(book("history", "s2", "--format", "json"))
    assert [r["event"] for r in one] == [r["event"] for r in rows if r["subscription_id"] == "s2"]
    for args in ((), ("s1", "--customer", "ada")):
        wrong = book("history", *args, check=False)
        assert wrong.returncode != 0 and wrong.stderr == (
            "error: history takes a subscription id or --customer ID (one of them)\n"
        )
    unknown = book("history", "--customer", "nobody", check=False)
    assert unknown.stderr == "error: unknown customer 'nobody'\n"


def test_events_from_before_recorded_time_existed_show_it_empty(tmp_path: Path) -> None:
    data_dir = tmp_path / "old"
    data_dir.mkdir()
    for name in ("events.sqlite", "keys.sqlite"):  # a store written by subledger 0.1
        with gzip.open(OLD_BOOK / f"{name}.gz") as src, open(data_dir / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    run = runner(data_dir)
    old = as_json(run("history", "--customer", "cus_000001", "--format", "json"))
    assert old and all(r["recorded_at"] == "" for r in old)
    run("customer", "update", "cus_000001", "--country", "FR", "--at", "2025-06-01")
    now = as_json(run("history", "--customer", "cus_000001", "--format", "json"))
    new = [r for r in now if r not in old]  # the update, and any due work it brought up
    assert [r for r in now if r in old] == old  # the old events, still without a recorded time
    assert ("Customer", "Updated", "2025-06-01T00:00:00Z") in [
        (r["aggregate"], r["event"], r["at"]) for r in new
    ]
    assert all(r["recorded_at"].endswith("Z") for r in new)
