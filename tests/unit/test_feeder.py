"""The embedded feeder: a projection that fails on an event is stuck there, alone; the ledger,
the other read models and the caller go on; feeders sharing one read DB never apply twice."""

from __future__ import annotations

import dataclasses
import logging
import os
import sqlite3
import threading
from pathlib import Path

import pytest
from ledger_support import Book, T, dump_tables

from consumers.embedded import SOURCE, LogFeeder, ProjectionStuck
from domain import commands as c
from domain.identity import receipt_uuid
from projections import reports
from projections.base import Projection, get_faults
from projections.billing import BillingProjection
from projections.db import ReadDB
from projections.metrics import MetricsProjection
from schemas.records import EventRecord

TOO_BIG = 2**63  # what the real bug stored: "Python int too large to convert to SQLite INTEGER"


class Tally(Projection):
    """Notes every event it is fed; its handler has a bug on one subscription's Subscribed."""

    name = "tally"
    tables = {
        "tally": "CREATE TABLE IF NOT EXISTS tally ("
        " position BIGINT PRIMARY KEY, event TEXT NOT NULL, amount BIGINT NOT NULL)"
    }

    def __init__(self, bad_subscription: str | None = "bad") -> None:
        self.bad = bad_subscription

    def apply(self, db: ReadDB, record: EventRecord) -> None:
        amount = 1
        if record.name == "Subscription.Subscribed" and record.data["subscription_id"] == self.bad:
            amount = TOO_BIG
        db.execute("INSERT INTO tally VALUES (?, ?, ?)", (record.position, record.name, amount))


class FaultyBilling(BillingProjection):
    """The real billing model, with the real bug: a subscription's MRR too big for SQLite."""

    def __init__(self, bad_subscription: str | None = "bad") -> None:
        super().__init__()
        self.bad = bad_subscription

    def on_Subscription_Subscribed(self, db: ReadDB, r: EventRecord) -> None:
        if r.data["subscription_id"] == self.bad:
            r = dataclasses.replace(r, data={**r.data, "mrr": TOO_BIG})
        super().on_Subscription_Subscribed(db, r)


def make_book(book: Book, *subscriptions: str) -> None:
    t = T(2024, 1, 1)
    book.plan("basic", t)
    for sub in subscriptions:
        book.customer(f"cus-{sub}", t)
        book.subscribe(sub, f"cus-{sub}", "basic", t)


def subscribed_at(book: Book, subscription_id: str) -> int:
    """The notification id of the subscription's Subscribed event."""
    (position,) = [
        r.position
        for r in book.records()
        if r.name == "Subscription.Subscribed" and r.data["subscription_id"] == subscription_id
    ]
    return position


def tally_rows(db: ReadDB) -> list[tuple[int, str]]:
    return [(r["position"], r["event"]) for r in db.query("SELECT * FROM tally ORDER BY 1")]


def live_tables(db: ReadDB) -> list[str]:
    return [*BillingProjection.tables, *MetricsProjection.tables]


# ---- a projection that raises ------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [3, 2000])
def test_a_projection_that_raises_is_stuck_at_that_event_and_the_others_reach_the_head(
    book: Book, tmp_path: Path, caplog: pytest.LogCaptureFixture, batch_size: int
) -> None:
    make_book(book, "good-1", "bad", "good-2")
    bad = subscribed_at(book, "bad")
    head = book.head()
    assert 1 < bad < head
    db = ReadDB(f"sqlite:///{tmp_path / 'read.sqlite'}")
    projections = [BillingProjection(), Tally(), MetricsProjection()]
    for p in projections:
        p.create(db)
    feeder = LogFeeder(book.ledger, db, projections, batch_size=batch_size)

    with caplog.at_level(logging.WARNING, logger="consumers.embedded"):
        assert feeder.catch_up() == head  # no exception reaches the caller

    assert feeder.positions() == {"billing": head, "tally": bad - 1, "metrics": head}
    # everything before the failing event, nothing of it (its rows rolled back), nothing after
    assert tally_rows(db) == [(r.position, r.name) for r in book.records() if r.position < bad]
    assert dump_tables(db, live_tables(db)) == dump_tables(book.db, live_tables(db))
    (fault,) = get_faults(db)
    assert (fault["projection"], fault["source"], fault["position"], fault["event"]) == (
        "tally",
        SOURCE,
        bad,
        "Subscription.Subscribed",
    )
    assert fault["reason"] == "Python int too large to convert to SQLite INTEGER"
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning == (
        f"read model tally stuck at {bad} (Subscription.Subscribed):"
        " Python int too large to convert to SQLite INTEGER"
    )

    # the ledger goes on; so do the healthy read models; the stuck one is not retried
    book.customer("cus-later", T(2024, 2, 1))
    book.subscribe("later", "cus-later", "basic", T(2024, 2, 1))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="consumers.embedded"):
        assert feeder.catch_up() == book.head() - head
    assert caplog.records == []
    assert feeder.positions() == {"billing": book.head(), "tally": bad - 1, "metrics": book.head()}
    assert [row["subscription_id"] for row in db.query("SELECT * FROM subscriptions")] == [
        "good-1",
        "bad",
        "good-2",
        "later",
    ]
    db.close()


def test_a_rebuild_that_meets_the_bug_again_stops_there_and_says_where(
    book: Book, tmp_path: Path
) -> None:
    make_book(book, "bad", "good")
    bad = subscribed_at(book, "bad")
    db = ReadDB(f"sqlite:///{tmp_path / 'read.sqlite'}")
    tally = Tally()
    tally.create(db)
    feeder = LogFeeder(book.ledger, db, [tally])
    feeder.catch_up()
    assert set(feeder.faults()) == {"tally"}

    with pytest.raises(ProjectionStuck) as stuck:
        feeder.rebuild(tally)
    assert (stuck.value.fault["position"], stuck.value.fault["event"]) == (
        bad,
        "Subscription.Subscribed",
    )
    assert str(stuck.value) == (
        f"tally stuck at {bad} (Subscription.Subscribed):"
        " Python int too large to convert to SQLite INTEGER"
    )
    assert feeder.positions() == {"tally": bad - 1}
    assert len(tally_rows(db)) == bad - 1

    tally.bad = None  # the bug fixed: the rebuild clears the fault and reaches the head
    assert feeder.rebuild(tally) == book.head()
    assert feeder.faults() == {}
    assert feeder.positions() == {"tally": book.head()}
    assert len(tally_rows(db)) == book.head()
    db.close()


def test_a_busy_database_is_no_verdict_on_the_event_nothing_is_recorded(
    book: Book, tmp_path: Path
) -> None:
    make_book(book, "one")
    db = ReadDB(f"sqlite:///{tmp_path / 'read.sqlite'}")

    class Busy(Tally):
        def apply(self, db: ReadDB, record: EventRecord) -> None:
            if record.name == "Subscription.Subscribed":
                raise sqlite3.OperationalError("database is locked")
            super().apply(db, record)

    projections = [BillingProjection(), Busy()]
    for p in projections:
        p.create(db)
    feeder = LogFeeder(book.ledger, db, projections)
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        feeder.catch_up()
    # the whole batch rolled back, for every projection: the next catch-up redoes it
    assert feeder.positions() == {"billing": 0, "tally": 0}
    assert db.query("SELECT * FROM subscriptions") == []
    assert feeder.faults() == {}
    assert feeder.recorded == []
    db.close()


def test_an_event_nobody_can_decode_stops_every_projection_there_without_raising(
    book: Book, tmp_path: Path
) -> None:
    make_book(book, "one")
    store = sqlite3.connect(book.config.data_dir / "events.sqlite")
    with store:
        store.execute(
            "INSERT INTO stored_events VALUES (?, 1, 'gone.module:Gone.Event', x'00')",
            ("0" * 32,),
        )
    store.close()
    unreadable = book.head()
    book.customer("cus-after", T(2024, 2, 1))
    db = ReadDB(f"sqlite:///{tmp_path / 'read.sqlite'}")
    projections = [BillingProjection(), MetricsProjection()]
    for p in projections:
        p.create(db)
    feeder = LogFeeder(book.ledger, db, projections)
    feeder.catch_up()
    assert feeder.positions() == {"billing": unreadable - 1, "metrics": unreadable - 1}
    assert {n: (f["position"], f["event"]) for n, f in feeder.faults().items()} == {
        "billing": (unreadable, "Gone.Event"),
        "metrics": (unreadable, "Gone.Event"),
    }
    db.close()


# ---- through the Runtime, as the CLI uses it ------------------------------------------------


def test_a_stuck_read_model_never_fails_a_command_and_everything_else_goes_on(
    book: Book,
) -> None:
    tally = Tally()
    tally.create(book.rt.db)
    book.rt.feeder.projections.append(tally)
    make_book(book, "good-1", "bad")  # no exception: each command is recorded, catch-up too
    bad = subscribed_at(book, "bad")
    book.customer("cus-2", T(2024, 1, 2))
    book.subscribe("good-2", "cus-2", "basic", T(2024, 1, 2))
    book.advance(T(2024, 2, 2))  # due work comes from billing, which is healthy

    assert book.rt.catch_up() == 0
    assert book.rt.feeder.positions() == {
        **{p.name: book.head() for p in book.rt.projections},  # every read model
        "tally": bad - 1,
    }
    assert reports.mrr(book.db)["USD"]["active_subscriptions"] == 3
    renewals = [i for i in book.invoices() if i["reason"] != "subscription_create"]
    assert sorted(i["subscription_id"] for i in renewals) == ["bad", "good-1", "good-2"]


def test_a_stuck_billing_model_still_finds_all_due_work_and_a_rebuild_makes_it_whole(
    book: Book,
) -> None:
    billing = FaultyBilling()
    book.rt.feeder.projections[0] = billing
    make_book(book, "early", "bad", "late")  # billing never sees "bad" nor "late"
    bad = subscribed_at(book, "bad")
    assert book.rt.feeder.faults()["billing"]["position"] == bad
    assert [r["subscription_id"] for r in book.db.query("SELECT * FROM subscriptions")] == ["early"]

    # due work is not read from the stale rows alone: every subscription is renewed, once
    assert book.advance(T(2024, 2, 1))["renewals"] == 3
    for sub in ("early", "bad", "late"):
        assert book.event_types(sub).count("Renewed") == 1, sub
    assert book.advance(T(2024, 2, 2))["renewals"] == 0

    billing.bad = None  # the bug fixed: the rebuild gives the whole book back
    assert book.rt.feeder.rebuild(billing) == book.head()
    renewals = [i for i in book.invoices() if i["reason"] != "subscription_create"]
    assert sorted(i["subscription_id"] for i in renewals) == ["bad", "early", "late"]


# ---- feeders sharing one read DB ------------------------------------------------------------


def test_feeders_on_one_read_db_take_turns_and_apply_each_event_once(
    book: Book, tmp_path: Path
) -> None:
    make_book(book, *[f"sub-{i}" for i in range(12)])
    book.advance(T(2024, 3, 2))
    url = f"sqlite:///{tmp_path / 'read.sqlite'}"
    setup = ReadDB(url)
    for p in (BillingProjection(), MetricsProjection()):
        p.create(setup)
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def feed() -> None:
        db = ReadDB(url)
        try:
            feeder = LogFeeder(book.ledger, db, [BillingProjection(), MetricsProjection()], 7)
            start.wait()
            feeder.catch_up()
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=feed) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert dump_tables(setup, live_tables(setup)) == dump_tables(book.db, live_tables(setup))
    assert get_faults(setup) == []
    setup.close()


def test_a_busy_read_db_after_a_recorded_command_is_a_warning_not_a_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import cli

    for name in [n for n in os.environ if n.startswith("SUBLEDGER_")]:
        monkeypatch.delenv(name)  # the embedded default, whatever services ./dev test set up
    app = cli.App(str(tmp_path / "book"))
    try:
        runtime = app.runtime

        def busy(progress: object = None) -> int:
            raise sqlite3.OperationalError("database is locked")

        runtime.catch_up = busy
        command = c.DefinePlan(command_id="plan", at=T(2024, 1, 1), plan_id="basic", name="B",
                               currency="USD", pricing={"model": "flat", "amount": 1000,
                                                        "tiers": []})  # fmt: skip
        assert app.run(command)["duplicate"] is False  # no exception: it is recorded
        assert len(runtime.ledger.recorder.select_events(receipt_uuid("plan"))) == 1
        assert capsys.readouterr().err == (
            "warning: recorded, but the read models are not up to date yet (database is"
            " locked); the next command or read brings them up\n"
        )
    finally:
        app.close()
