"""The installed `subledger` command, run as a user runs it: a process, a data dir, its output."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest

SUBLEDGER = str(Path(sys.executable).with_name("subledger"))
INVOICE_KEYS = {
    "number",
    "subscription_id",
    "customer_id",
    "currency",
    "issued_at",
    "period_start",
    "period_end",
    "lines",
    "subtotal",
    "tax",
    "total",
    "amount_due",
    "status",
}
LINE_KEYS = {"kind", "description", "amount", "period_start", "period_end"}

Run = Callable[..., subprocess.CompletedProcess]


def user_env() -> dict[str, str]:
    """The user's environment without any service settings: the embedded default."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    env["SUBLEDGER_ACTOR"] = "e2e-user"
    env["COLUMNS"] = "200"
    return env


def runner(data_dir: Path, env: dict[str, str] | None = None) -> Run:
    """`run(*args)`: the CLI on `data_dir` in a user's environment (or `env`), exit 0 checked."""

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [SUBLEDGER, "--data-dir", str(data_dir), *args],
            capture_output=True,
            text=True,
            env=env if env is not None else user_env(),
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        if check:
            assert proc.returncode == 0, f"{args}: {proc.stderr}"
        return proc

    return run


def as_json(proc: subprocess.CompletedProcess):
    return json.loads(proc.stdout)


def as_csv(proc: subprocess.CompletedProcess) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(proc.stdout)))


def head(run: Run) -> int:
    """How many events the store holds, as the user can see it."""
    return as_json(run("projections", "status", "--format", "json"))[0]["head"]


# ---- help ------------------------------------------------------------------------------------


def command_paths() -> list[tuple[str, ...]]:
    import cli

    paths: list[tuple[str, ...]] = []

    def walk(group: click.Group, prefix: tuple[str, ...]) -> None:
        for name, command in sorted(group.commands.items()):
            paths.append((*prefix, name))
            if isinstance(command, click.Group):
                walk(command, (*prefix, name))

    walk(cli.cli, ())
    return paths


def test_the_installed_command_is_on_the_path_of_the_venv() -> None:
    assert Path(SUBLEDGER).is_file()


def test_root_help_lists_the_commands(tmp_path: Path) -> None:
    proc = runner(tmp_path)("--help")
    for name in ("plan", "customer", "subscribe", "change-plan", "cancel", "clock", "report"):
        assert f"  {name}" in proc.stdout
    assert proc.stderr == ""


PATHS = command_paths()


@pytest.fixture(scope="module")
def helps(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, ...], tuple]:
    """`subledger <path> --help` for every command, run side by side: (rc, stdout, stderr)."""
    data_dir = tmp_path_factory.mktemp("help")
    procs = {
        path: subprocess.Popen(
            [SUBLEDGER, "--data-dir", str(data_dir), *path, "--help"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=user_env(),
        )
        for path in PATHS
    }
    out = {}
    for path, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        out[path] = (proc.returncode, stdout, stderr)
    assert not (data_dir / "events.sqlite").exists()  # help touches no store
    return out


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_every_subcommand_has_help(helps: dict, path: tuple[str, ...]) -> None:
    returncode, stdout, stderr = helps[path]
    assert returncode == 0, stderr
    assert stdout.startswith(f"Usage: subledger {' '.join(path)}")
    assert stderr == ""


# ---- a book made through the CLI -------------------------------------------------------------


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Three plans, two customers, a subscription upgraded half-way and cancelled, three months."""
    run = runner(tmp_path_factory.mktemp("cli-book"))
    run("plan", "define", "basic", "--name", "Basic", "--pricing", "flat", "--price", "10.00",
        "--currency", "usd", "--at", "2024-01-01")  # fmt: skip
    run("plan", "define", "pro", "--name", "Pro", "--pricing", "flat", "--price", "30.00",
        "--currency", "USD", "--feature", "sso", "--at", "2024-01-01")  # fmt: skip
    run("plan", "define", "seats", "--name", "Seats", "--pricing", "tiered", "--tier", "10:5.00",
        "--tier", "inf:4.00", "--currency", "EUR", "--at", "2024-01-01")  # fmt: skip
    run("customer", "register", "ada", "--name", "Ada Lovelace", "--email", "ada@example.com",
        "--payment-token", "tok_visa", "--at", "2024-01-01")  # fmt: skip
    run("customer", "register", "eve", "--name", "Eve", "--email", "eve@example.com",
        "--payment-token", "tok_visa", "--country", "de", "--at", "2024-01-01")  # fmt: skip
    run("subscribe", "ada", "basic", "--subscription-id", "s1", "--at", "2024-01-01",
        "--command-id", "signup-ada")  # fmt: skip
    run("subscribe", "eve", "seats", "--subscription-id", "s2", "--quantity", "12",
        "--at", "2024-01-10")  # fmt: skip
    run("change-plan", "s1", "pro", "--at", "2024-01-16T12:00:00Z")
    run("clock", "advance", "--to", "2024-02-10")
    run("cancel", "s1", "--at", "2024-02-10", "--actor", "support-desk")
    run("clock", "advance", "--to", "2024-04-01")
    return run


def test_plan_list_shows_the_catalog(book: Run) -> None:
    plans = as_json(book("plan", "list", "--format", "json"))
    assert [(p["plan_id"], p["currency"], p["pricing"]["model"]) for p in plans] == [
        ("basic", "USD", "flat"),
        ("pro", "USD", "flat"),
        ("seats", "EUR", "tiered"),
    ]
    assert plans[0]["pricing"]["amount"] == 1000
    assert plans[1]["features"] == ["sso"]
    assert [t["up_to"] for t in plans[2]["pricing"]["tiers"]] == [10, None]
    rows = as_csv(book("plan", "list", "--format", "csv"))
    assert [(r["plan_id"], r["price"], r["currency"]) for r in rows][:2] == [
        ("basic", "1000", "USD"),  # CSV amounts are minor units, as in JSON
        ("pro", "3000", "USD"),
    ]


def test_customer_show_decrypts_the_profile_and_lists_subscriptions(book: Run) -> None:
    profile = as_json(book("customer", "show", "ada", "--format", "json"))
    assert (profile["name"], profile["email"], profile["payment_token"]) == (
        "Ada Lovelace",
        "ada@example.com",
        "tok_visa",
    )
    assert (profile["country"], profile["erased"], profile["subscriptions"]) == (
        "US",
        False,
        ["s1"],
    )
    assert profile["balance"] == {"USD": {"outstanding": 0, "credit": 0}}


def test_subscription_show_has_the_state_after_the_clock_ran(book: Run) -> None:
    s1 = as_json(book("subscription", "show", "s1", "--format", "json"))
    assert (s1["plan_id"], s1["status"], s1["mrr"], s1["canceled_at"]) == (
        "pro",
        "canceled",
        0,
        "2024-03-01T00:00:00Z",
    )
    s2 = as_json(book("subscription", "show", "s2", "--format", "json"))
    # tiered: 10 x 5.00 + 2 x 4.00
    assert (s2["status"], s2["quantity"], s2["currency"], s2["mrr"]) == ("active", 12, "EUR", 5800)


def test_invoices_list_json_has_the_documented_shape_and_amounts(book: Run) -> None:
    invoices = as_json(book("invoices", "list", "--format", "json"))
    for invoice in invoices:
        assert set(invoice) >= INVOICE_KEYS
        for line in invoice["lines"]:
            assert set(line) == LINE_KEYS
    assert [(i["number"], i["subscription_id"], i["total"], i["status"]) for i in invoices] == [
        ("INV-000001", "s1", 1000, "paid"),
        ("INV-000002", "s2", 5800, "paid"),
        ("INV-000003", "s1", 1000, "paid"),  # 30.00/2 - 10.00/2 on Jan 16 at noon
        ("INV-000004", "s1", 3000, "paid"),
        ("INV-000005", "s2", 5800, "paid"),
        ("INV-000006", "s2", 5800, "paid"),
    ]
    upgrade = invoices[2]
    assert [(ln["kind"], ln["amount"]) for ln in upgrade["lines"]] == [
        ("proration_credit", -500),
        ("proration_charge", 1500),
    ]
    assert upgrade["lines"][0]["period_start"] == "2024-01-16T12:00:00Z"
    assert (upgrade["subtotal"], upgrade["tax"], upgrade["amount_due"]) == (1000, 0, 1000)
    only_s2 = as_json(book("invoices", "list", "--subscription", "s2", "--format", "json"))
    assert [i["number"] for i in only_s2] == ["INV-000002", "INV-000005", "INV-000006"]


def test_invoices_list_csv_parses_with_a_header(book: Run) -> None:
    rows = as_csv(book("invoices", "list", "--format", "csv"))
    assert len(rows) == 6
    assert {"number", "total", "amount_due", "status"} <= set(rows[0])
    assert rows[0]["number"] == "INV-000001"


@pytest.mark.parametrize(
    ("report", "window"),
    [
        ("mrr", ()),
        ("movements", ("--from", "2024-01-01", "--to", "2024-04-01")),
        ("churn", ("--from", "2024-02-01", "--to", "2024-04-01")),
        ("cohorts", ()),
        ("revenue", ("--from", "2024-01-01", "--to", "2024-04-01")),
    ],
)
def test_every_report_speaks_json_and_csv(book: Run, report: str, window: tuple) -> None:
    data = as_json(book("report", report, *window, "--format", "json"))
    assert data
    rows = as_csv(book("report", report, *window, "--format", "csv"))
    assert rows
    assert list(rows[0])  # a header
    table = book("report", report, *window)
    assert table.stdout.strip()


def test_reports_have_the_books_figures(book: Run) -> None:
    mrr = as_json(book("report", "mrr", "--format", "json"))
    assert mrr == {
        "EUR": {
            "mrr": 5800,
            "arr": 69600,
            "paying_customers": 1,
            "arpu": 5800,
            "active_subscriptions": 1,
        },
        "USD": {"mrr": 0, "arr": 0, "paying_customers": 0, "arpu": 0, "active_subscriptions": 0},
    }
    then = as_json(book("report", "mrr", "--at", "2024-02-15", "--format", "json"))
    assert then["USD"]["mrr"] == 3000
    moved = as_json(book("report", "movements", "--from", "2024-01-01", "--to", "2024-04-01",
                         "--format", "json"))  # fmt: skip
    assert {k: moved["USD"][k] for k in ("new", "expansion", "churn", "net")} == {
        "new": 1000,
        "expansion": 2000,
        "churn": -3000,
        "net": 0,
    }
    churn = as_json(book("report", "churn", "--from", "2024-02-01", "--to", "2024-04-01",
                         "--format", "json"))  # fmt: skip
    assert (churn["USD"]["customers_at_start"], churn["USD"]["logo_churn_rate"]) == (1, 1.0)
    revenue = as_json(book("report", "revenue", "--from", "2024-01-01", "--to", "2024-04-01",
                           "--format", "json"))  # fmt: skip
    assert (revenue["USD"]["billed"], revenue["USD"]["collected"]) == (5000, 5000)
    assert revenue["EUR"]["billed"] == 3 * 5800
    cohorts = as_json(book("report", "cohorts", "--format", "json"))
    assert cohorts == [{"cohort": "2024-01", "customers": 2, "retention": [1.0, 1.0, 0.5]}]
    csv_rows = as_csv(book("report", "cohorts", "--format", "csv"))
    assert csv_rows == [
        {"cohort": "2024-01", "customers": "2", "m0": "1.0", "m1": "1.0", "m2": "0.5"}
    ]


def test_history_shows_who_asked_for_every_event(book: Run) -> None:
    rows = as_json(book("history", "s1", "--format", "json"))
    assert [r["event"] for r in rows] == [  # each charge asked for, then made after commit
        "Subscribed",
        "Invoiced",
        "ChargeRequested",
        "PaymentSucceeded",
        "PlanChanged",
        "Invoiced",
        "ChargeRequested",
        "PaymentSucceeded",
        "RenewalReminderIssued",  # 7 days before the monthly renewal
        "Renewed",
        "Invoiced",
        "ChargeRequested",
        "PaymentSucceeded",
        "CancellationScheduled",
        "Churned",
    ]
    for row in rows:
        assert row["actor"] and row["command"] and row["command_id"], row
    assert rows[0]["command_id"] == "signup-ada"
    assert (rows[0]["actor"], rows[0]["command"], rows[0]["source"]) == (
        "e2e-user",
        "Subscribe",
        "cli",
    )
    assert (rows[-2]["actor"], rows[-2]["command"]) == ("support-desk", "Cancel")
    assert (rows[-1]["actor"], rows[-1]["command"]) == ("scheduler", "AdvanceClock")
    csv_rows = as_csv(book("history", "s1", "--format", "csv"))
    assert {"version", "event", "at", "actor", "command", "command_id"} <= set(csv_rows[0])


def test_repeating_a_command_id_changes_nothing(book: Run) -> None:
    before = head(book)
    again = as_json(
        book(
            "subscribe",
            "ada",
            "basic",
            "--subscription-id",
            "s1",
            "--at",
            "2024-01-01",
            "--command-id",
            "signup-ada",
            "--format",
            "json",
        )
    )
    assert (again["duplicate"], again["invoices"]) == (True, ["INV-000001"])
    assert head(book) == before


# ---- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            (
                "customer",
                "register",
                "bob",
                "--name",
                "Bob",
                "--email",
                "bob@example.com",
                "--payment-token",
                "4242424242424242",
            ),
            "payment_token",
        ),
        (
            (
                "customer",
                "register",
                "bob",
                "--name",
                "Bob",
                "--email",
                "bob@example.com",
                "--payment-token",
                "tok_visa",
                "--preference",
                "note=4242 4242 4242 4242",
            ),
            "card number",
        ),
        (("subscribe", "ada", "platinum", "--subscription-id", "s9"), "unknown plan 'platinum'"),
        (("subscribe", "ada", "basic", "--at", "2024-13-45"), "not an ISO 8601 date"),
        (("clock", "advance", "--to", "yesterday"), "not an ISO 8601 date"),
        (("cancel", "nope"), "unknown subscription 'nope'"),
        (("plan", "define", "x", "--name", "X", "--price", "ten", "--currency", "USD"), "ten"),
        (("report", "churn", "--from", "2024-03-01", "--to", "2024-02-01"), "--to must be after"),
    ],
)
def test_a_refused_command_prints_one_error_line_and_records_nothing(
    book: Run, args: tuple, message: str
) -> None:
    before = head(book)
    proc = book(*args, check=False)
    assert proc.returncode != 0
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert "4242" not in proc.stderr  # the card number is never echoed
    assert "Traceback" not in proc.stdout + proc.stderr
    assert head(book) == before


def test_a_card_number_never_reaches_the_data_dir(tmp_path: Path) -> None:
    run = runner(tmp_path)
    run("customer", "register", "bob", "--name", "Bob", "--email", "bob@example.com",
        "--payment-token", "4111111111111111", check=False)  # fmt: skip
    stored = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert b"4111111111111111" not in stored


def test_cancelling_before_the_clock_caught_up_does_not_stick_the_clock(tmp_path: Path) -> None:
    run = runner(tmp_path)
    run("plan", "define", "basic", "--name", "Basic", "--price", "10.00", "--currency", "USD",
        "--at", "2024-01-01")  # fmt: skip
    run("customer", "register", "ada", "--name", "Ada", "--email", "ada@example.com",
        "--payment-token", "tok_visa", "--at", "2024-01-01")  # fmt: skip
    run("subscribe", "ada", "basic", "--subscription-id", "s1", "--at", "2024-01-01")
    run("subscribe", "ada", "basic", "--subscription-id", "s2", "--at", "2024-01-01")
    # the clock is still at Jan 1: refusing this cancel would be a fine answer too
    run("cancel", "s1", "--at", "2024-02-10", check=False)
    run("clock", "advance", "--to", "2024-03-01")
    invoices = as_json(run("invoices", "list", "--subscription", "s2", "--format", "json"))
    assert len(invoices) == 3


# ---- the demo ----------------------------------------------------------------------------------


def test_demo_simulates_and_prints_the_book(tmp_path: Path) -> None:
    proc = runner(tmp_path)("demo", "--customers", "30", "--months", "3")
    out = proc.stdout
    assert "Simulating 30 customers over 3 months" in out
    assert "MRR USD" in out and "ARR USD" in out and "ARPU" in out
    assert "MRR movements by month (USD)" in out
    for column in ("new", "expansion", "contraction", "churn", "reactivation", "logo churn"):
        assert column in out
    assert "Revenue (USD): billed" in out
    assert "Invoices: " in out and "INV-0000" in out
    mrr = as_json(runner(tmp_path)("report", "mrr", "--format", "json"))
    assert mrr["USD"]["mrr"] > 0 and mrr["USD"]["paying_customers"] > 0
    assert f"MRR USD {mrr['USD']['mrr'] // 100}." in out


def test_rebuilding_a_projection_from_the_cli_gives_the_same_invoices(book: Run) -> None:
    before = book("invoices", "list", "--format", "json").stdout
    rebuilt = as_json(book("projections", "rebuild", "billing", "--format", "json"))
    assert rebuilt["projection"] == "billing"
    assert rebuilt["events_applied"] == head(book)
    assert book("invoices", "list", "--format", "json").stdout == before


def test_every_read_model_is_rebuilt_in_one_pass_and_reconciles(book: Run) -> None:
    before = book("report", "mrr", "--format", "json").stdout
    rebuilt = as_json(book("projections", "rebuild", "--all", "--format", "json"))
    names = ["billing", "metrics", "notifications", "webhooks", "exports"]
    assert [r["projection"] for r in rebuilt] == names
    assert {r["events_applied"] for r in rebuilt} == {head(book)}
    assert book("report", "mrr", "--format", "json").stdout == before
    assert "identical" in book("audit", "reconcile").stdout
    for args, says in [
        ((), "name them or give --all (known: billing"),
        (("billing", "--all"), "not both"),
        (("billing", "bogus"), "unknown projection 'bogus'"),
    ]:
        proc = book("projections", "rebuild", *args, check=False)
        assert proc.returncode != 0 and says in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [("subscribe", "cus"), ("no-such-command",), ("report", "churn", "--from", "2024-01-01")],
)
def test_a_usage_mistake_is_one_error_line_with_where_to_look(tmp_path: Path, args) -> None:
    proc = runner(tmp_path)(*args, check=False)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "--help" in lines[0]


def test_payments_list_shows_declines_with_their_reason_and_reference(tmp_path: Path) -> None:
    run = runner(tmp_path)
    run("plan", "define", "basic", "--name", "Basic", "--price", "10.00", "--currency", "USD",
        "--at", "2024-01-01")  # fmt: skip
    run("customer", "register", "bob", "--name", "Bob", "--email", "bob@example.com",
        "--payment-token", "tok_chargeDeclinedInsufficientFunds", "--at", "2024-01-01")  # fmt: skip
    run("subscribe", "bob", "basic", "--subscription-id", "s", "--at", "2024-01-01")
    run("clock", "advance", "--to", "2024-01-09")
    failed = as_json(run("payments", "list", "--outcome", "failed", "--format", "json"))
    assert [(p["attempt"], p["at"], p["amount"], p["reason"]) for p in failed] == [
        (1, "2024-01-01T00:00:00Z", 1000, "insufficient_funds"),
        (2, "2024-01-02T00:00:00Z", 1000, "insufficient_funds"),
        (3, "2024-01-04T00:00:00Z", 1000, "insufficient_funds"),
        (4, "2024-01-06T00:00:00Z", 1000, "insufficient_funds"),
        (5, "2024-01-08T00:00:00Z", 1000, "insufficient_funds"),
    ]
    assert all(p["reference"].startswith("ch_failed_") for p in failed)
    assert len({p["reference"] for p in failed}) == 5  # one idempotency key per attempt
    assert as_json(run("payments", "list", "--outcome", "succeeded", "--format", "json")) == []
    rows = as_csv(run("payments", "list", "--customer", "bob", "--format", "csv"))
    assert len(rows) == 5 and rows[0]["subscription_id"] == "s"
