"""`subledger audit verify | head | seal` as a user runs them: exit codes, one-line errors
naming the broken place, JSON output, and an old store sealed then verified."""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from test_audit_cli import runner, small_book
from test_cli import user_env

OLD_BOOK = Path(__file__).resolve().parent.parent / "fixtures" / "book-0.1"


@pytest.fixture
def book(tmp_path: Path) -> Any:
    run = runner(tmp_path / "book", user_env())
    small_book(run)
    return run


def events(data_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(data_dir / "events.sqlite")


def test_an_untouched_book_verifies_and_head_names_its_last_checkpoint(book: Any) -> None:
    head = json.loads(book("audit", "head", "--format", "json").stdout)
    assert set(head) == {"head", "position"} and len(head["head"]) == 64
    verdict = json.loads(book("audit", "verify", "--format", "json").stdout)
    assert verdict == {"status": "intact", "from": 1, "rows": head["position"], **head}
    anchored = book("audit", "verify", "--expect-head", head["head"].upper())
    assert "intact" in anchored.stdout and anchored.stderr == ""
    part = json.loads(book("audit", "verify", "--from", "3", "--format", "json").stdout)
    assert part["rows"] == head["position"] - 2 and part["head"] == head["head"]


def test_a_wrong_expected_head_fails_in_one_line(book: Any) -> None:
    proc = book("audit", "verify", "--expect-head", "ab" * 32, check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("error: --expect-head: no checkpoint from position 1 on has")


def test_an_edited_event_fails_naming_position_aggregate_and_version(
    book: Any, tmp_path: Path
) -> None:
    with events(tmp_path / "book") as db:
        oid, version, state = db.execute(
            "SELECT originator_id, originator_version, state FROM stored_events WHERE rowid = 4"
        ).fetchone()
        db.execute(
            "UPDATE stored_events SET state = ? WHERE rowid = 4",
            (state[:-1] + bytes([state[-1] ^ 0x20]),),
        )
    proc = book("audit", "verify", check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    aggregate = f"{oid[:8]}-{oid[8:12]}-{oid[12:16]}-{oid[16:20]}-{oid[20:]}"
    assert proc.stderr == (
        f"error: chain broken at log position 4, aggregate {aggregate} version {version}:"
        " hash mismatch: the stored row is not the row that was chained\n"
    )


def test_a_deleted_event_fails_as_a_missing_row(book: Any, tmp_path: Path) -> None:
    with events(tmp_path / "book") as db:
        db.execute("DELETE FROM stored_events WHERE rowid = 2")
    proc = book("audit", "verify", check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: chain broken at log position 2, aggregate ")
    assert "missing row" in proc.stderr


def test_an_old_store_is_not_sealed_until_audit_seal(tmp_path: Path) -> None:
    data_dir = tmp_path / "old"
    data_dir.mkdir()
    for name in ("events.sqlite", "keys.sqlite"):
        with gzip.open(OLD_BOOK / f"{name}.gz") as src, open(data_dir / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    run = runner(data_dir, user_env())
    for verb in ("verify", "head"):
        proc = run("audit", verb, check=False)
        assert proc.returncode == 1
        assert proc.stderr == (
            "error: not sealed: run 'subledger audit seal' to chain this store's events\n"
        )
    sealed = json.loads(run("audit", "seal", "--format", "json").stdout)
    with events(data_dir) as db:
        (count,) = db.execute("SELECT COUNT(*) FROM stored_events").fetchone()
        last = db.execute("SELECT topic, state FROM stored_events ORDER BY rowid DESC").fetchone()
    assert sealed["status"] == "sealed" and sealed["rows"] == count > 100
    # the seal is an event of its own, the last one, under the chain it started
    assert last[0] == "domain.books.audit_chain:AuditChain.Sealed"
    assert json.loads(last[1])["events_before"] == count - 1
    assert sealed["position"] == count
    verdict = json.loads(run("audit", "verify", "--format", "json").stdout)
    assert (verdict["status"], verdict["rows"], verdict["head"]) == (
        "intact",
        count,
        sealed["head"],
    )
    again = run("audit", "seal", check=False)
    assert again.returncode == 1 and "sealed already" in again.stderr
    # new commands on a sealed store are chained as they are recorded
    run("plan", "define", "late", "--name", "Late", "--price", "1.00", "--currency", "USD")
    after = json.loads(run("audit", "verify", "--format", "json").stdout)
    assert after["rows"] > count and after["head"] != sealed["head"]
