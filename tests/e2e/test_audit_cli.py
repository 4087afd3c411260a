"""`subledger audit reconcile` as a user runs it: exit codes, the one-line verdict, the
differences in every format."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from test_cli import runner, user_env


def small_book(run: Any) -> None:
    run("plan", "define", "basic", "--name", "Basic", "--pricing", "flat", "--price", "10.00",
        "--currency", "USD", "--at", "2024-01-01")  # fmt: skip
    run("customer", "register", "ada", "--name", "Ada", "--email", "ada@example.com",
        "--payment-token", "tok_visa", "--at", "2024-01-01")  # fmt: skip
    run("subscribe", "ada", "basic", "--subscription-id", "s1", "--at", "2024-01-01")
    run("clock", "advance", "--to", "2024-03-01")


@pytest.fixture
def book(tmp_path: Path) -> Any:
    run = runner(tmp_path / "book", user_env())
    small_book(run)
    return run


def edit(data_dir: Path, sql: str) -> None:
    with sqlite3.connect(data_dir / "read.sqlite") as conn:
        conn.execute(sql)


def test_a_healthy_book_reconciles_with_exit_0_and_one_line(book: Any) -> None:
    proc = book("audit", "reconcile")
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and lines[0].endswith("rows: identical"), proc.stdout
    tables = int(lines[0].split(" tables, ")[0])
    assert tables >= 20 and proc.stderr == ""
    one = book("audit", "reconcile", "--projection", "metrics").stdout
    assert one.startswith("4 tables, ") and one.rstrip().endswith("identical")


def test_an_edited_invoice_fails_naming_the_row(book: Any, tmp_path: Path) -> None:
    edit(tmp_path / "book", "UPDATE invoices SET total = 999 WHERE number = 'INV-000002'")
    proc = book("audit", "reconcile", "--format", "json", check=False)
    assert proc.returncode == 1
    assert json.loads(proc.stdout) == [
        {
            "difference": "changed",
            "projection": "billing",
            "table": "invoices",
            "key": "number=INV-000002",
            "column": "total",
            "live": 999,
            "rebuilt": 1000,
        }
    ]
    [line] = proc.stderr.splitlines()
    assert (
        line.startswith("error: 1 difference between the read models")
        and "billing.invoices" in line
    )
    table = book("audit", "reconcile", check=False)
    assert table.returncode == 1 and "INV-000002" in table.stdout and "999" in table.stdout
    # the metrics model alone is still identical
    assert book("audit", "reconcile", "--projection", "metrics").returncode == 0


def test_a_deleted_and_an_inserted_row_show_in_csv(book: Any, tmp_path: Path) -> None:
    edit(tmp_path / "book", "DELETE FROM invoice_lines WHERE number = 'INV-000001'")
    edit(
        tmp_path / "book",
        "INSERT INTO customers VALUES ('zed', 'forged', 'US', '2024-01-01T00:00:00Z', 0)",
    )
    proc = book("audit", "reconcile", "--format", "csv", check=False)
    assert proc.returncode == 1
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert [(r["difference"], r["table"], r["key"], r["column"]) for r in rows] == [
        ("extra", "customers", "customer_id=zed", "*"),
        ("missing", "invoice_lines", "number=INV-000001, line_no=1", "*"),
    ]
    assert rows[0]["rebuilt"] == "" and '"aggregate_id": "forged"' in rows[0]["live"]
    assert '"kind": "recurring"' in rows[1]["rebuilt"]
    assert "2 differences" in proc.stderr


def test_a_rebuild_makes_it_identical_again(book: Any, tmp_path: Path) -> None:
    edit(tmp_path / "book", "UPDATE invoices SET status = 'void'")
    assert book("audit", "reconcile", check=False).returncode == 1
    book("projections", "rebuild", "billing")
    assert book("audit", "reconcile").stdout.rstrip().endswith("identical")


def test_an_unknown_projection_is_one_line(book: Any) -> None:
    proc = book("audit", "reconcile", "--projection", "ledgr", check=False)
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "error: --projection: unknown read model 'ledgr'"
        " (known: billing, metrics, notifications, webhooks, exports)"
    ]


def test_help_describes_reconcile(book: Any) -> None:
    out = book("audit", "reconcile", "--help").stdout
    assert "--projection" in out and "--format" in out and "identical" in out


def test_on_postgresql_an_edited_row_fails_and_the_scratch_schema_goes(
    tmp_path: Path, pg_database_pair: Any
) -> None:
    env = {
        **user_env(),
        "SUBLEDGER_EVENT_STORE": pg_database_pair.event_store_url,
        "SUBLEDGER_READ_DB": pg_database_pair.read_db_url,
    }
    run = runner(tmp_path / "pg", env)
    small_book(run)
    assert run("audit", "reconcile").stdout.rstrip().endswith("identical")
    import psycopg2

    conn = psycopg2.connect(pg_database_pair.read_db_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("UPDATE invoices SET amount_paid = 1 WHERE number = 'INV-000001'")
        proc = run("audit", "reconcile", "--format", "json", check=False)
        assert proc.returncode == 1
        [diff] = json.loads(proc.stdout)
        assert (diff["key"], diff["column"], diff["live"], diff["rebuilt"]) == (
            "number=INV-000001",
            "amount_paid",
            1,
            1000,
        )
        with conn, conn.cursor() as cur:
            cur.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'subledger_reco%'")
            assert cur.fetchall() == []
    finally:
        conn.close()
