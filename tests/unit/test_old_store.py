"""A store written by an earlier version still loads, answers the same, and takes commands.

The fixture (tests/fixtures/book-0.1) was written by subledger 0.1 before receipts kept a
request digest and before the book was kept in time order; see its README.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from ledger_support import T

from bootstrap import Config, Runtime
from domain import commands as c
from domain.books.command_receipt import CommandReceipt
from domain.errors import IdempotencyConflict
from domain.identity import receipt_uuid
from projections import reports

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "book-0.1"


@pytest.fixture
def old_book(tmp_path: Path) -> Path:
    data_dir = tmp_path / "old"
    data_dir.mkdir()
    for name in ("events.sqlite", "keys.sqlite"):
        with gzip.open(FIXTURE / f"{name}.gz") as src, open(data_dir / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return data_dir


def test_an_old_store_rebuilds_to_the_answers_it_gave(old_book: Path) -> None:
    expected_invoices = json.loads(gzip.decompress((FIXTURE / "invoices.json.gz").read_bytes()))
    expected_mrr = json.loads((FIXTURE / "mrr.json").read_text())
    with Runtime(Config(data_dir=old_book)) as runtime:
        runtime.catch_up()
        invoices = json.loads(json.dumps(reports.invoices(runtime.db), default=str))
        assert invoices == expected_invoices
        assert reports.mrr(runtime.db) == expected_mrr
        for notification in runtime.ledger.recorder.select_notifications(0, 100_000):
            runtime.ledger.mapper.to_domain_event(notification)  # every event still maps


def test_old_receipts_upcast_and_still_guard_their_command_ids(old_book: Path) -> None:
    with Runtime(Config(data_dir=old_book)) as runtime:
        ledger = runtime.ledger
        receipt = ledger.get(CommandReceipt, receipt_uuid("old-erase"))
        assert receipt is not None and receipt.digest is None  # written before digests
        again = ledger.execute(
            c.EraseCustomer(command_id="old-erase", at=T(2025, 5, 2), customer_id="cus_000002")
        )
        assert again["duplicate"] is True
        with pytest.raises(IdempotencyConflict):  # another command under the same id
            ledger.execute(c.RetirePlan(command_id="old-erase", at=T(2025, 5, 2), plan_id="pro"))


def test_an_old_store_takes_new_commands_in_time_order(old_book: Path) -> None:
    with Runtime(Config(data_dir=old_book)) as runtime:
        ledger = runtime.ledger
        runtime.catch_up()
        before = len(reports.invoices(runtime.db))
        ledger.execute(c.AdvanceClock(command_id="new-clock", at=T(2025, 7, 1)))
        runtime.catch_up()
        invoices = reports.invoices(runtime.db)
        assert len(invoices) > before
        issued = [i["issued_at"] for i in invoices[before:]]
        assert issued == sorted(issued)
        assert [i["number"] for i in invoices] == [
            f"INV-{n:06d}" for n in range(1, len(invoices) + 1)
        ]
        profile = ledger.customer_profile("cus_000001")
        assert profile["erased"] is False and "@" in profile["email"]
        assert ledger.customer_profile("cus_000002")["erased"] is True
