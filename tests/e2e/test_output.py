"""The installed `subledger` under hostile input: user text prints as data in every format, a
recorded command is never reported as failed, and broken data dirs get one plain line."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from verbs import reads

SUBLEDGER = str(Path(sys.executable).with_name("subledger"))
Run = Callable[..., subprocess.CompletedProcess]


def user_env(**extra: str) -> dict[str, str]:
    """The user's environment without any service settings: the embedded default."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    env.update(SUBLEDGER_ACTOR="e2e-user", COLUMNS="200", **extra)
    return env


def runner(data_dir: Path | None, **env: str) -> Run:
    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        where = ["--data-dir", str(data_dir)] if data_dir is not None else []
        proc = subprocess.run(
            [SUBLEDGER, *where, *args],
            capture_output=True,
            text=True,
            env=user_env(**env),
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        if check:
            assert proc.returncode == 0, f"{args}: {proc.stderr}"
        return proc

    return run


def as_csv(proc: subprocess.CompletedProcess) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(proc.stdout)))


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    for leak in ("Error", "Errno", "Traceback", "Exception"):
        assert leak not in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return runner(tmp_path / "data")


# ---- user text is data -----------------------------------------------------------------------


def test_a_plan_named_with_markup_lists_in_every_format(run: Run) -> None:
    name = "Pro [/bold] plan"
    run("plan", "define", "pro", "--name", name, "--price", "10.00", "--currency", "USD",
        "--at", "2024-01-01")  # fmt: skip
    table = run("plan", "list")
    assert name in table.stdout and "10.00" in table.stdout and table.stderr == ""
    assert [r["name"] for r in as_csv(run("plan", "list", "--format", "csv"))] == [name]
    assert [p["name"] for p in json.loads(run("plan", "list", "--format", "json").stdout)] == [name]


def test_subscribing_with_a_markup_id_exits_0_and_the_subscription_is_saved(run: Run) -> None:
    run("plan", "define", "basic", "--name", "Basic", "--price", "10.00", "--currency", "USD",
        "--at", "2024-01-01")  # fmt: skip
    run("customer", "register", "ada", "--name", "Ada [b]", "--email", "ada@example.com",
        "--payment-token", "tok_visa", "--at", "2024-01-01")  # fmt: skip
    proc = run("subscribe", "ada", "basic", "--subscription-id", "s[/]x", "--at", "2024-01-01")
    assert "s[/]x" in proc.stdout and proc.stderr == ""
    saved = json.loads(run("subscription", "show", "s[/]x", "--format", "json").stdout)
    assert (saved["subscription_id"], saved["status"], saved["mrr"]) == ("s[/]x", "active", 1000)
    invoices = as_csv(run("invoices", "list", "--subscription", "s[/]x", "--format", "csv"))
    assert [(i["subscription_id"], i["total"], i["status"]) for i in invoices] == [
        ("s[/]x", "1000", "paid")
    ]
    assert "s[/]x" in run("subscription", "list").stdout
    assert "Subscribed" in run("history", "s[/]x").stdout


# ---- edges of CSV ------------------------------------------------------------------------------


def test_an_empty_invoice_list_prints_its_csv_header(run: Run) -> None:
    proc = run("invoices", "list", "--format", "csv")
    assert proc.stdout == ",".join(reads.INVOICE_COLUMNS) + "\n"
    assert json.loads(run("invoices", "list", "--format", "json").stdout) == []
    table = run("invoices", "list").stdout
    assert "number" in table and "amount_due" in table


WINDOW = ("--from", "2024-01-01", "--to", "2024-02-01")


@pytest.mark.parametrize(
    ("args", "columns"),
    [
        (("subscription", "list"), reads.SUBSCRIPTION_COLUMNS),
        (("payments", "list"), reads.PAYMENT_COLUMNS),
        (("plan", "list"), reads.PLAN_COLUMNS),
        (("report", "mrr"), reads.MRR_COLUMNS),
        (("report", "cohorts"), reads.COHORT_COLUMNS),
        (("report", "movements", *WINDOW), reads.MOVEMENT_COLUMNS),
        (("report", "churn", *WINDOW), reads.CHURN_COLUMNS),
        (("report", "revenue", *WINDOW), reads.REVENUE_COLUMNS),
        (("report", "deferred"), reads.DEFERRED_COLUMNS),
        (("report", "deferred", "--invoices"), reads.DEFERRED_INVOICE_COLUMNS),
        (("report", "renewals"), reads.RENEWAL_COLUMNS),
        (("report", "cohorts", "--by", "revenue"), reads.REVENUE_COHORT_COLUMNS),
    ],
    ids=[
        "subscription list",
        "payments list",
        "plan list",
        "report mrr",
        "report cohorts",
        "report movements",
        "report churn",
        "report revenue",
        "report deferred",
        "report deferred --invoices",
        "report renewals",
        "report cohorts --by revenue",
    ],
)
def test_every_empty_read_prints_its_csv_header(run: Run, args: tuple, columns: tuple) -> None:
    assert run(*args, "--format", "csv").stdout == ",".join(columns) + "\n"


def test_plan_list_csv_has_minor_units_and_a_currency_column(run: Run) -> None:
    run("plan", "define", "basic", "--name", "Basic", "--price", "10.50", "--currency", "usd",
        "--at", "2024-01-01")  # fmt: skip
    run("plan", "define", "yen", "--name", "Yen", "--price", "1050", "--currency", "JPY",
        "--at", "2024-01-01")  # fmt: skip
    run("plan", "define", "seats", "--name", "Seats", "--pricing", "tiered", "--tier", "10:5.00",
        "--tier", "inf:4.00", "--currency", "EUR", "--at", "2024-01-01")  # fmt: skip
    rows = {r["plan_id"]: r for r in as_csv(run("plan", "list", "--format", "csv"))}
    assert (rows["basic"]["price"], rows["basic"]["currency"]) == ("1050", "USD")
    assert (rows["yen"]["price"], rows["yen"]["currency"]) == ("1050", "JPY")
    seats = json.loads(rows["seats"]["price"])
    assert (seats["model"], [t["up_to"] for t in seats["tiers"]]) == ("tiered", [10, None])
    assert rows["seats"]["currency"] == "EUR"
    table = run("plan", "list").stdout
    assert "10.50" in table and "2 tiers" in table


# ---- errors in the user's words ---------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [("plan", "list"), ("clock", "show"), ("subscribe", "ada", "basic"), ("report", "mrr")],
    ids=" ".join,
)
def test_a_data_dir_that_is_a_file_gives_one_line(tmp_path: Path, args: tuple) -> None:
    data_dir = tmp_path / "not-a-dir"
    data_dir.write_text("a file")
    for run in (runner(data_dir), runner(None, SUBLEDGER_DATA_DIR=str(data_dir))):
        line = one_error_line(run(*args, check=False))
        assert (
            line == f"error: the data directory {data_dir} is a file; give a directory (--data-dir)"
        )


@pytest.mark.parametrize("name", ["events.sqlite", "read.sqlite", "keys.sqlite"])
@pytest.mark.parametrize(
    "args",
    [("plan", "list"), ("clock", "show"), ("subscribe", "ada", "basic")],
    ids=" ".join,
)
def test_a_garbage_store_file_gives_one_line(tmp_path: Path, name: str, args: tuple) -> None:
    data_dir = tmp_path / "store"
    data_dir.mkdir()
    (data_dir / name).write_bytes(b"this is not an SQLite database\n" * 64)
    line = one_error_line(runner(data_dir)(*args, check=False))
    assert line == (
        f"error: {data_dir} is not a subledger store ({name} is not an SQLite database)"
    )


def test_an_unreachable_postgresql_gives_its_host_and_port_but_never_the_password(
    tmp_path: Path,
) -> None:
    run = runner(
        tmp_path / "data", SUBLEDGER_EVENT_STORE="postgresql://ledger:s3cret@127.0.0.1:1/ev"
    )
    line = one_error_line(run("plan", "list", check=False))
    assert line == (
        "error: cannot reach PostgreSQL at 127.0.0.1:1 (SUBLEDGER_EVENT_STORE); "
        "check it is running (ops/services status)"
    )
