"""Read models that keep rows in memory between events (metrics' subscriptions,
notifications' subscriptions and invoices): what they write is the same as reading every
row back, whether a batch was rolled back and applied again, or another instance (another
worker, after a rebalance) applied the events in between."""

from __future__ import annotations

from pathlib import Path

import pytest
from ledger_support import Book, T, dump_tables, flat

from domain import commands as c
from projections.db import ReadDB
from projections.metrics import MetricsProjection
from projections.notifications import NotificationsProjection


@pytest.fixture
def history(book: Book) -> Book:
    book.plan("basic", T(2024, 1, 1), flat(1000))
    book.plan("pro", T(2024, 1, 1), flat(3000))
    book.plan("trial", T(2024, 1, 1), flat(2000), trial_days=7)
    for n in range(3):
        book.customer(f"cus-{n}", T(2024, 1, 1))
    book.subscribe("one", "cus-0", "basic", T(2024, 1, 1))
    book.subscribe("two", "cus-0", "trial", T(2024, 1, 1))
    book.subscribe("three", "cus-1", "pro", T(2024, 1, 2))
    book.run(c.ChangePlan, T(2024, 1, 10), subscription_id="one", plan_id="pro")
    book.run(c.Cancel, T(2024, 1, 12), subscription_id="three", immediately=True)
    book.advance(T(2024, 2, 5))  # renewals, the trial's conversion, receipts
    book.run(c.ChangePlan, T(2024, 2, 10), subscription_id="two", plan_id="basic")
    book.run(c.EraseCustomer, T(2024, 2, 11), customer_id="cus-1")
    book.advance(T(2024, 3, 5))
    return book


KINDS = (MetricsProjection, NotificationsProjection)


def tables() -> list[str]:
    return [table for kind in KINDS for table in kind.tables]


def test_rows_kept_in_memory_give_what_reading_them_gives(history: Book, tmp_path: Path) -> None:
    records = history.records()
    assert len(records) > 60
    live = dump_tables(history.db, tables())
    assert live["mrr_movements"] and live["notifications"]  # something to compare

    db = ReadDB(f"sqlite:///{tmp_path / 'kept.sqlite'}")
    a = [kind() for kind in KINDS]  # one worker
    b = [kind() for kind in KINDS]  # another, taking over in between
    for p in a:
        p.create(db)
    # the other instance takes over for a plan change: what the first kept is then stale
    change = max(i for i, r in enumerate(records) if r.name == "Subscription.PlanChanged")
    try:
        # a batch applied, then rolled back (a fault, a lost connection): applied again
        with pytest.raises(RuntimeError), db.transaction():
            for record in records[: change + 5]:
                for p in a:
                    p.apply(db, record)
            raise RuntimeError("rolled back")
        with db.transaction():
            for record in records[:change]:
                for p in a:
                    p.apply(db, record)
        with db.transaction():  # the other instance: its memory has none of these
            for record in records[change : change + 1]:
                for p in b:
                    p.apply(db, record)
        with db.transaction():  # back to the first: what it kept is older than the rows
            for record in records[change + 1 :]:
                for p in a:
                    p.apply(db, record)
        assert dump_tables(db, tables()) == live
    finally:
        db.close()
