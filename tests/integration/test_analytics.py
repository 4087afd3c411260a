"""The analysts' views (projections/analytics.py, docs/analytics.md) on SQLite and PostgreSQL.

One simulated book per module: its events in a PostgreSQL store, read into a PostgreSQL read
model and into a SQLite one by the CLI. Both give the same rows in every view; every example
query of docs/analytics.md runs on both with the same answer; each view's columns are pinned;
and the figures agree with the CLI's reports to the cent.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg2
import pytest
from psycopg2 import sql

from domain.recognition import next_month, schedule
from projections import analytics, finance
from projections.billing import BillingProjection
from projections.db import ReadDB
from projections.metrics import MetricsProjection

SUBLEDGER = str(Path(sys.executable).with_name("subledger"))
DOCS = Path(__file__).resolve().parents[2] / "docs" / "analytics.md"
ID, TEXT, INT, BIG, FLOAT = "text", "text", "integer", "bigint", "double precision"


def timed(stem: str, first: str | None = None) -> dict[str, str]:
    """A time column and its day/month text twins."""
    return {first or f"{stem}_at": TEXT, f"{stem}_day": TEXT, f"{stem}_month": TEXT}


# The contract: every view's columns, in order, with PostgreSQL's types. Changing this is
# changing what analysts' saved queries read: say so in the changelog.
COLUMNS: dict[str, dict[str, str]] = {
    "customers": {
        "customer_id": ID,
        "country": TEXT,
        **timed("registered"),
        **timed("first_paid"),
        "erased": INT,
    },
    "plans": {
        "plan_id": ID,
        "name": TEXT,
        "currency": TEXT,
        "interval_unit": TEXT,
        "interval_count": INT,
        "trial_days": INT,
        "price_version": INT,
        "retired": INT,
        **timed("defined"),
    },
    "subscriptions": {
        "subscription_id": ID,
        "customer_id": ID,
        "plan_id": ID,
        "plan_version": INT,
        "status": TEXT,
        "quantity": INT,
        "currency": TEXT,
        "mrr": BIG,
        **timed("created"),
        **timed("current_period_start", "current_period_start"),
        **timed("current_period_end", "current_period_end"),
        **timed("trial_end", "trial_end"),
        **timed("trial_ended"),
        "trial_converted": INT,
        "cancel_at_period_end": INT,
        **timed("canceled"),
        "churn_kind": TEXT,
        "churn_reason": TEXT,
    },
    "invoices": {
        "invoice_number": ID,
        "subscription_id": ID,
        "customer_id": ID,
        "currency": TEXT,
        "reason": TEXT,
        "status": TEXT,
        **timed("issued"),
        **timed("period_start", "period_start"),
        **timed("period_end", "period_end"),
        "subtotal": BIG,
        "tax": BIG,
        "total": BIG,
        "credit_applied": BIG,
        "amount_due": BIG,
        "amount_paid": BIG,
        "amount_outstanding": BIG,
        "amount_written_off": BIG,
        "amount_credited": BIG,
        "attempts": INT,
        **timed("next_retry"),
        **timed("paid"),
    },
    "invoice_lines": {
        "invoice_number": ID,
        "line_no": INT,
        "subscription_id": ID,
        "customer_id": ID,
        "currency": TEXT,
        "kind": TEXT,
        "description": TEXT,
        "amount": BIG,
        **timed("period_start", "period_start"),
        **timed("period_end", "period_end"),
        **timed("issued"),
    },
    "credit_notes": {
        "credit_note_number": ID,
        "invoice_number": ID,
        "subscription_id": ID,
        "customer_id": ID,
        "currency": TEXT,
        "amount": BIG,
        "net_amount": BIG,
        "tax": BIG,
        "reason": TEXT,
        "method": TEXT,
        "refund_status": TEXT,
        "refund_amount": BIG,
        **timed("issued"),
        **timed("refund_settled"),
    },
    "payments": {
        "payment_id": ID,
        "invoice_number": ID,
        "subscription_id": ID,
        "customer_id": ID,
        "currency": TEXT,
        "amount": BIG,
        "outcome": TEXT,
        "attempt": INT,
        "reason": TEXT,
        "at": TEXT,
        "day": TEXT,
        "month": TEXT,
    },
    "mrr_movements": {
        "movement_id": ID,
        "customer_id": ID,
        "subscription_id": ID,
        "currency": TEXT,
        "at": TEXT,
        "day": TEXT,
        "month": TEXT,
        "kind": TEXT,
        "delta": BIG,
        "mrr_before": BIG,
        "mrr_after": BIG,
    },
    "mrr_daily": {
        "day": TEXT,
        "month": TEXT,
        "currency": TEXT,
        "mrr": BIG,
        "arr": BIG,
        "paying_customers": BIG,
        "active_subscriptions": BIG,
        "mrr_change": BIG,
    },
    "churn": {
        "month": TEXT,
        "currency": TEXT,
        "customers_at_start": BIG,
        "customers_churned": BIG,
        "mrr_at_start": BIG,
        "new_mrr": BIG,
        "expansion_mrr": BIG,
        "contraction_mrr": BIG,
        "churned_mrr": BIG,
        "reactivation_mrr": BIG,
        "net_mrr_change": BIG,
        "logo_churn_rate": FLOAT,
        "revenue_churn_rate": FLOAT,
        "net_revenue_churn_rate": FLOAT,
    },
    "cohorts": {
        "cohort_month": TEXT,
        "month": TEXT,
        "months_since": INT,
        "currency": TEXT,
        "cohort_customers": BIG,
        "customers": BIG,
        "cohort_mrr": BIG,
        "mrr": BIG,
        "customer_retention": FLOAT,
        "revenue_retention": FLOAT,
    },
    "revenue_schedule": {
        "document_kind": TEXT,
        "document_number": ID,
        "invoice_number": ID,
        "line_no": INT,
        "line_kind": TEXT,
        "subscription_id": ID,
        "customer_id": ID,
        "currency": TEXT,
        "month": TEXT,
        "amount": BIG,
        "line_amount": BIG,
        "service_start": TEXT,
        "service_end": TEXT,
        **timed("issued"),
    },
    "dunning": {
        "invoice_number": ID,
        "subscription_id": ID,
        "customer_id": ID,
        "country": TEXT,
        "plan_id": ID,
        "subscription_status": TEXT,
        "currency": TEXT,
        "amount_outstanding": BIG,
        "attempts": INT,
        "failed_attempts": BIG,
        **timed("last_failed"),
        "last_failure_reason": TEXT,
        **timed("next_retry"),
        **timed("issued"),
    },
}


# ---- the book -----------------------------------------------------------------------------


@dataclass
class Book:
    pg: ReadDB
    sqlite: ReadDB
    run_pg: Callable[..., Any]
    run_sqlite: Callable[..., Any]
    end: str  # the simulation's last instant (the ledger clock)

    def both(self) -> list[ReadDB]:
        return [self.sqlite, self.pg]


def cli(data_dir: Path, **env: str) -> Callable[..., Any]:
    """`run(*args)`: the subledger command embedded on these databases; its JSON output."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    environ.update(SUBLEDGER_ACTOR="analyst-test", COLUMNS="200", **env)

    def run(*args: str, fmt: bool = True) -> Any:
        proc = subprocess.run(
            [SUBLEDGER, "--data-dir", str(data_dir), *args, *(["--format", "json"] if fmt else [])],
            capture_output=True,
            text=True,
            env=environ,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 0, f"{args}: {proc.stderr}"
        return json.loads(proc.stdout) if fmt else proc.stdout

    return run


@pytest.fixture(scope="module")
def pg_databases(services: dict[str, str]) -> Iterator[tuple[str, str]]:
    """A fresh event store and read model for the module (conftest's are per test)."""
    base = urlsplit(services["read_db_url"])
    admin = psycopg2.connect(base._replace(path="/postgres").geturl())
    admin.autocommit = True
    names = [f"pytest_analytics_{uuid.uuid4().hex[:8]}_{kind}" for kind in ("events", "read")]
    with admin.cursor() as cur:
        for name in names:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield tuple(base._replace(path=f"/{name}").geturl() for name in names)  # type: ignore[misc]
    finally:
        with admin.cursor() as cur:
            for name in [*names, names[0].removesuffix("_events") + "_keys"]:
                cur.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        admin.close()


@pytest.fixture(scope="module")
def book(pg_databases: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Book]:
    """A simulated book, a customer whose card declines (dunning) and three refunds."""
    events, read = pg_databases
    where = tmp_path_factory.mktemp("analytics")
    sqlite_url = f"sqlite:///{where / 'read.sqlite'}"
    run_pg = cli(where / "data", SUBLEDGER_EVENT_STORE=events, SUBLEDGER_READ_DB=read)
    run_sqlite = cli(where / "data", SUBLEDGER_EVENT_STORE=events, SUBLEDGER_READ_DB=sqlite_url)
    made = run_pg("simulate", "--customers", "40", "--months", "7", "--seed", "12")
    end = made["end"]
    run_pg(
        "customer", "register", "dunning-1", "--name", "Dee", "--email", "dee@example.com",
        "--country", "GB", "--payment-token", "tok_chargeDeclined", "--at", end,
    )  # fmt: skip
    run_pg("subscribe", "dunning-1", "pro", "--at", end, "--command-id", "analytics-sub")
    paid = [i for i in run_pg("invoices", "list", "--status", "paid") if i["total"] > 0]
    recent = [i for i in paid if i["period_end"] > end]
    assert len(recent) >= 2
    run_pg("refund", recent[0]["number"], "--amount", "5.00", "--at", end)
    run_pg("refund", recent[-1]["number"], "--at", end)  # the rest of a running period
    run_pg("refund", paid[0]["number"], "--at", end)  # after its period ended: at once
    run_sqlite("projections", "wait", fmt=False)  # the same store into the SQLite model
    pg, lite = ReadDB(read), ReadDB(sqlite_url)
    try:
        yield Book(pg, lite, run_pg, run_sqlite, end)
    finally:
        pg.close()
        lite.close()


def normal(value: Any) -> Any:
    """One value as both backends' drivers would agree on it: numbers exact where whole."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return int(value) if value == int(value) else round(float(value), 9)
    return value


def rows(db: ReadDB, query: str) -> list[tuple]:
    """The rows as sorted tuples of normalised values (the backends may order ties apart)."""
    if db.kind == "sqlite":
        query = query.replace(f"{analytics.SCHEMA}.", f"{analytics.SCHEMA}_")
    return sorted((tuple(normal(v) for v in r.values()) for r in db.query(query)), key=repr)


def view(db: ReadDB, name: str, where: str = "") -> list[dict[str, Any]]:
    return [
        {k: normal(v) for k, v in r.items()}
        for r in db.query(f"SELECT * FROM {analytics.view_name(db, name)} {where}")
    ]


def examples() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", DOCS.read_text(), re.DOTALL)


# ---- the contract -------------------------------------------------------------------------


def test_every_view_has_its_pinned_columns_on_both_backends(book: Book) -> None:
    assert list(analytics.VIEWS) == list(COLUMNS)
    for name, columns in COLUMNS.items():
        for db in book.both():
            cur = db.conn.cursor()
            cur.execute(f"SELECT * FROM {analytics.view_name(db, name)} WHERE 1 = 0")
            assert [d[0] for d in cur.description] == list(columns), (db.kind, name)
            cur.close()
        types = book.pg.query(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            (analytics.SCHEMA, name),
        )
        assert {r["column_name"]: r["data_type"] for r in types} == columns, name


def test_every_view_gives_the_same_rows_on_sqlite_and_postgresql(book: Book) -> None:
    for name in COLUMNS:
        query = f"SELECT * FROM {analytics.SCHEMA}.{name}"
        lite, pg = rows(book.sqlite, query), rows(book.pg, query)
        assert lite, f"{name} is empty: the book should exercise it"
        assert lite == pg, name


def test_every_documented_example_runs_on_both_backends_with_the_same_answer(
    book: Book,
) -> None:
    found = examples()
    assert len(found) >= 10
    for query in found:
        lite, pg = rows(book.sqlite, query), rows(book.pg, query)
        assert lite, f"no rows: {query}"
        assert lite == pg, query


def test_the_docs_describe_every_view_and_column() -> None:
    text = DOCS.read_text()
    # the tables' shorthand: `paid_at / _day / _month` is paid_at, paid_day and paid_month
    text = re.sub(r"\b(\w+?)(_at)? / _day / _month", r"\1\2 \1_day \1_month", text)
    for name, columns in COLUMNS.items():
        section = text[text.index(f"### `{name}`") :]
        section = section[: section.find("\n### ", 1)]
        for column in columns:
            assert re.search(rf"\b{column}\b", section), (name, column)


# ---- the figures against the CLI's reports --------------------------------------------------


def test_mrr_daily_ends_at_report_mrr(book: Book) -> None:
    report = book.run_pg("report", "mrr")
    for db in book.both():
        last = max(r["day"] for r in view(db, "mrr_daily"))
        rows_ = view(db, "mrr_daily", f"WHERE day = '{last}'")
        assert {r["currency"]: r["mrr"] for r in rows_} == {c: f["mrr"] for c, f in report.items()}
        for r in rows_:
            figures = report[r["currency"]]
            assert r["arr"] == figures["arr"]
            assert r["paying_customers"] == figures["paying_customers"]
            assert r["active_subscriptions"] == figures["active_subscriptions"]


def test_revenue_schedule_sums_to_the_lines_net_of_tax_and_credit_notes(book: Book) -> None:
    billed: dict[str, int] = defaultdict(int)
    for invoice in book.run_pg("invoices", "list"):
        for line in invoice["lines"]:
            if line["kind"] != "tax":
                billed[invoice["currency"]] += line["amount"]
    notes = book.run_pg("credit-notes", "list")
    assert len(notes) == 3
    for note in notes:
        for line in note["lines"]:
            if line["kind"] != "tax":
                billed[note["currency"]] -= line["amount"]
    for db in book.both():
        recognised: dict[str, int] = defaultdict(int)
        for r in view(db, "revenue_schedule"):
            recognised[r["currency"]] += r["amount"]
        assert recognised == billed


def test_revenue_schedule_months_equal_the_python_rule(book: Book) -> None:
    """The SQL and the Python (domain/recognition.py, projections/finance.py) implement one
    rule: each month's sum per currency to the cent, through both ways of reading the items."""
    for db in book.both():
        sql_months: dict[tuple[str, str], int] = defaultdict(int)
        for r in view(db, "revenue_schedule"):
            sql_months[r["currency"], r["month"]] += r["amount"]
        python_months: dict[tuple[str, str], int] = defaultdict(int)
        for currency, _, item in finance.items(db):
            for month, amount in schedule(item):
                python_months[currency, month] += amount
        assert dict(sql_months) == dict(python_months), db.kind
        for month in sorted({m for _, m in sql_months}):
            start = datetime.fromisoformat(f"{month}-01T00:00:00+00:00")
            window = finance.recognition(db, start, next_month(start))
            for currency, figures in window.items():
                assert figures["recognised"] == sql_months.get((currency, month), 0), month
        # and one window over the whole book: its months add up to its total, month by month
        first = datetime.fromisoformat(f"{min(m for _, m in sql_months)}-01T00:00:00+00:00")
        last = datetime.fromisoformat(f"{max(m for _, m in sql_months)}-01T00:00:00+00:00")
        whole = finance.recognition(db, first, next_month(last))
        for currency, figures in whole.items():
            by_month = {m: f["recognised"] for m, f in figures["months"].items() if f["recognised"]}
            assert by_month == {m: a for (c, m), a in sql_months.items() if c == currency and a}
            assert sum(by_month.values()) == figures["recognised"]


def test_the_deferred_revenue_example_equals_finance_deferred(book: Book) -> None:
    [query] = [q for q in examples() if "AS deferred" in q]
    for db in book.both():
        answer = db.query(query.replace("analytics.", analytics.view_name(db, "")))
        at = datetime.fromisoformat(answer[0]["deferred_at"].replace("Z", "+00:00"))
        python = finance.deferred(db, at)
        assert {r["currency"]: (int(r["billed_net"]), int(r["deferred"])) for r in answer} == {
            c: (f["billed_net"], f["deferred"]) for c, f in python.items()
        }


def test_churn_months_match_report_churn(book: Book) -> None:
    months = view(book.pg, "churn", "WHERE customers_churned > 0 OR churned_mrr > 0")
    assert months
    for row in months[:3]:
        year, month = int(row["month"][:4]), int(row["month"][5:])
        after = f"{year + month // 12:04d}-{month % 12 + 1:02d}"
        report = book.run_pg(
            "report", "churn", "--from", f"{row['month']}-01", "--to", f"{after}-01"
        )[row["currency"]]
        for key in ("customers_at_start", "customers_churned", "mrr_at_start", "churned_mrr"):
            assert row[key] == report[key], (row["month"], key)
        assert row["contraction_mrr"] == report["contraction_mrr"]
        assert row["expansion_mrr"] == report["expansion_mrr"]
        for rate in ("logo_churn_rate", "revenue_churn_rate", "net_revenue_churn_rate"):
            mine = row[rate]
            assert (None if mine is None else round(mine, 6)) == report[rate], rate


def test_dunning_lists_the_declined_customer(book: Book) -> None:
    for db in book.both():
        [row] = view(db, "dunning", "WHERE customer_id = 'dunning-1'")
        assert row["failed_attempts"] == 1 and row["country"] == "GB"
        [invoice] = view(db, "invoices", f"WHERE invoice_number = '{row['invoice_number']}'")
        assert row["amount_outstanding"] == invoice["amount_due"] > 0


# ---- upgrades and rebuilds ----------------------------------------------------------------


def test_a_new_version_of_the_views_replaces_the_old(book: Book) -> None:
    for db in book.both():
        churn = analytics.view_name(db, "churn")
        analytics.drop_views(db)
        with db.transaction():
            if db.kind == "postgres":
                db.execute(f"CREATE SCHEMA IF NOT EXISTS {analytics.SCHEMA}")
            db.execute(f"CREATE VIEW {churn} AS SELECT 1 AS old_column")
            db.execute(
                "INSERT INTO read_model_views (contract, digest) VALUES (?, 'old')",
                (analytics.SCHEMA,),
            )
        assert analytics.create_views(db)
        assert list(view(db, "churn")[0]) == list(COLUMNS["churn"])


def test_rebuilding_a_read_model_keeps_the_views(book: Book) -> None:
    before = {n: rows(book.pg, f"SELECT * FROM analytics.{n}") for n in COLUMNS}
    for run in (book.run_pg, book.run_sqlite):
        for name in ("billing", "metrics"):
            assert run("projections", "rebuild", name)["events_applied"] > 0
    for name in COLUMNS:
        for db in book.both():
            assert rows(db, f"SELECT * FROM analytics.{name}") == before[name], (db.kind, name)


# ---- the recognition rule, by hand --------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReadDB]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'read.sqlite'}"
    else:
        url = request.getfixturevalue("pg_database")
    db = ReadDB(url)
    for projection in (BillingProjection(), MetricsProjection()):
        projection.create(db)
    assert analytics.create_views(db)
    try:
        yield db
    finally:
        db.close()


def invoice(db: ReadDB, number: str, issued: str, start: str, end: str, *lines: tuple) -> None:
    db.execute(
        "INSERT INTO invoices (number, subscription_id, customer_id, currency, reason,"
        " issued_at, period_start, period_end, subtotal, tax, total, credit_applied,"
        " amount_due, status) VALUES (?, 'sub', 'cus', 'USD', 'renewal', ?, ?, ?, 0, 0, 0, 0,"
        " 0, 'paid')",
        (number, issued, start, end),
    )
    for no, (kind, amount, *period) in enumerate(lines, 1):
        s, e = period or (None, None)
        db.execute(
            "INSERT INTO invoice_lines (number, line_no, kind, description, amount,"
            " period_start, period_end) VALUES (?, ?, ?, '', ?, ?, ?)",
            (number, no, kind, amount, s, e),
        )


def credit_note(db: ReadDB, number: str, of: str, issued: str, *lines: tuple) -> None:
    db.execute(
        "INSERT INTO credit_notes (number, invoice_number, subscription_id, customer_id,"
        " currency, amount, reason, method, issued_at, refund_status, updated_at)"
        " VALUES (?, ?, 'sub', 'cus', 'USD', 0, 'r', 'credit', ?, 'none', ?)",
        (number, of, issued, issued),
    )
    for no, (kind, amount) in enumerate(lines, 1):
        db.execute(
            "INSERT INTO credit_note_lines (number, line_no, kind, description, amount)"
            " VALUES (?, ?, ?, '', ?)",
            (number, no, kind, amount),
        )


def test_the_revenue_schedule_of_a_mid_period_upgrade_by_hand(empty_db: ReadDB) -> None:
    """A month of 31 days from Jan 15 12:00 at 10.00; an upgrade on Feb 1 00:00 credits the
    unused 14.5 days and charges them at 20.00 a month; a credit note on Feb 10 gives 3.00 back
    on the first invoice; one after the period ended is taken at once."""
    db = empty_db
    invoice(
        db, "INV-1", "2024-01-15T12:00:00Z", "2024-01-15T12:00:00Z", "2024-02-15T12:00:00Z",
        ("recurring", 1000), ("tax", 200),
    )  # fmt: skip
    invoice(
        db, "INV-2", "2024-02-01T00:00:00Z", "2024-02-01T00:00:00Z", "2024-02-15T12:00:00Z",
        ("proration_credit", -467, "2024-02-01T00:00:00Z", "2024-02-15T12:00:00Z"),
        ("proration_charge", 935, "2024-02-01T00:00:00Z", "2024-02-15T12:00:00Z"),
        ("tax", 94),
    )  # fmt: skip
    # issued a day late: Jan 31 to Mar 2 (31 days), its first day caught up on issue
    invoice(
        db, "INV-3", "2024-02-01T00:00:00Z", "2024-01-31T00:00:00Z", "2024-03-02T00:00:00Z",
        ("recurring", 3100),
    )  # fmt: skip
    credit_note(db, "CN-1", "INV-1", "2024-02-10T00:00:00Z", ("credit", 300), ("tax", 60))
    credit_note(db, "CN-2", "INV-2", "2024-03-05T00:00:00Z", ("credit", 50))
    got = {
        (r["document_number"], r["line_no"], r["month"]): r["amount"]
        for r in view(db, "revenue_schedule")
    }
    # INV-1: 16.5 of 31 days in January: trunc(1000 x 16.5 / 31) = 532, the rest in February
    # INV-2: all in February. INV-3, dated Feb 1 00:00, recognises nothing before that instant:
    # its Jan 31 is caught up in February (what is dated Feb 1 is February's), with 29 more
    # days there (30 of 31: 3000), the last one in March.
    # CN-1: Feb 10 to Feb 15 12:00 of INV-1, all in February; CN-2: after INV-2's period: March.
    assert got == {
        ("INV-1", 1, "2024-01"): 532,
        ("INV-1", 1, "2024-02"): 468,
        ("INV-2", 1, "2024-02"): -467,
        ("INV-2", 2, "2024-02"): 935,
        ("INV-3", 1, "2024-02"): 3000,
        ("INV-3", 1, "2024-03"): 100,
        ("CN-1", 1, "2024-02"): -300,
        ("CN-2", 1, "2024-03"): -50,
    }
    [cn1] = view(db, "revenue_schedule", "WHERE document_number = 'CN-1'")
    assert (cn1["service_start"], cn1["service_end"], cn1["invoice_number"]) == (
        "2024-02-10T00:00:00Z",
        "2024-02-15T12:00:00Z",
        "INV-1",
    )
    by_month: dict[str, int] = defaultdict(int)
    for (_, _, month), amount in got.items():
        by_month[month] += amount
    python: dict[str, int] = defaultdict(int)
    for _, _, item in finance.items(db):
        for month, amount in schedule(item):
            python[month] += amount
    assert python == by_month  # and so does the Python rule
    negative = {k: -v for k, v in got.items() if k[0] == "INV-1"}
    db.execute("UPDATE invoice_lines SET amount = -amount WHERE number = 'INV-1'")
    mirrored = {
        (r["document_number"], r["line_no"], r["month"]): r["amount"]
        for r in view(db, "revenue_schedule", "WHERE document_number = 'INV-1'")
    }
    assert mirrored == negative  # truncation toward zero: a credit mirrors a charge
