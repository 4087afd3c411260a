"""On the real PostgreSQL: a projection that fails on an event is stuck there alone (its
savepoint rolled back, the batch's transaction goes on), and feeders sharing one read DB
take turns instead of applying the same events twice."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bootstrap import Config, Runtime
from consumers.embedded import LogFeeder, ProjectionStuck
from domain import commands as c
from projections import reports
from projections.base import get_faults
from projections.billing import BillingProjection
from projections.db import ReadDB
from projections.metrics import MetricsProjection
from schemas.records import EventRecord

AT, FEB, MAR = (datetime(2024, m, d, tzinfo=UTC) for m, d in ((1, 1), (2, 2), (3, 2)))
TOO_BIG = 2**63  # PostgreSQL: "bigint out of range", and the transaction is aborted


class FaultyBilling(BillingProjection):
    """The real billing model with a bug: one subscription's MRR too big for a BIGINT."""

    def __init__(self, bad: str | None = "bad") -> None:
        super().__init__()
        self.bad = bad

    def on_Subscription_Subscribed(self, db: ReadDB, r: EventRecord) -> None:
        if r.data["subscription_id"] == self.bad:
            r = dataclasses.replace(r, data={**r.data, "mrr": TOO_BIG})
        super().on_Subscription_Subscribed(db, r)


@pytest.fixture
def runtime(pg_database_pair, tmp_path: Path) -> Iterator[Runtime]:
    config = Config(
        data_dir=tmp_path / "data",
        event_store=pg_database_pair.event_store_url,
        read_db=pg_database_pair.read_db_url,
    )
    rt = Runtime(config)
    try:
        yield rt
    finally:
        rt.close()


def execute(rt: Runtime, command: c.Command) -> dict:
    outcome = rt.ledger.execute(command)
    rt.catch_up()
    return outcome


def book(rt: Runtime, *subscriptions: str) -> None:
    execute(rt, c.DefinePlan(command_id="plan", at=AT, plan_id="basic", name="Basic",
                             currency="USD", pricing={"model": "flat", "amount": 1000,
                                                      "tiers": []}))  # fmt: skip
    for sub in subscriptions:
        execute(rt, c.RegisterCustomer(command_id=f"reg-{sub}", at=AT, customer_id=f"cus-{sub}",
                                       name="Ada", email=f"{sub}@example.com",
                                       payment_token="tok_visa"))  # fmt: skip
        execute(rt, c.Subscribe(command_id=f"sub-{sub}", at=AT, customer_id=f"cus-{sub}",
                                plan_id="basic", subscription_id=sub))  # fmt: skip


def rows(db: ReadDB, tables: list[str]) -> dict[str, list[str]]:
    """Every row of `tables`, in a stable order: for comparing read models."""
    return {
        t: sorted(repr(sorted(r.items())) for r in db.query(f"SELECT * FROM {t}")) for t in tables
    }


def test_a_failing_projection_on_postgres_is_stuck_alone_and_the_book_goes_on(
    runtime: Runtime,
) -> None:
    billing = FaultyBilling()
    runtime.feeder.projections[0] = billing
    book(runtime, "good-1", "bad", "good-2")  # every command returns: the catch-up never raises
    (bad,) = [
        r.position
        for r in runtime.feeder.records(0, 10_000)
        if r.name == "Subscription.Subscribed" and r.data["subscription_id"] == "bad"
    ]
    head = runtime.feeder.head()

    others = {p.name: head for p in runtime.projections}  # every read model
    assert runtime.feeder.positions() == {**others, "billing": bad - 1}
    (fault,) = get_faults(runtime.db)
    assert (fault["projection"], fault["position"], fault["event"]) == (
        "billing",
        bad,
        "Subscription.Subscribed",
    )
    assert "out of range" in fault["reason"] and "\n" not in fault["reason"]
    subs = runtime.db.query("SELECT subscription_id FROM subscriptions ORDER BY 1")
    assert [s["subscription_id"] for s in subs] == ["good-1"]  # nothing of "bad", nor after it
    assert reports.mrr(runtime.db)["USD"]["active_subscriptions"] == 3  # metrics went on

    # due work still found for what billing never saw ("bad" and "good-2")
    outcome = execute(runtime, c.AdvanceClock(command_id="feb", at=FEB))
    assert (outcome["renewals"], outcome["duplicate"]) == (3, False)
    assert runtime.feeder.positions()["billing"] == bad - 1

    billing.bad = None  # the bug fixed: a rebuild clears the fault and the book is whole
    assert runtime.feeder.rebuild(billing) == runtime.feeder.head()
    assert get_faults(runtime.db) == []
    renewed = runtime.db.query(
        "SELECT subscription_id FROM invoices WHERE period_start = '2024-02-01T00:00:00Z'"
    )
    assert sorted(r["subscription_id"] for r in renewed) == ["bad", "good-1", "good-2"]
    with pytest.raises(ProjectionStuck):  # and a rebuild that meets a bug says so
        runtime.feeder.rebuild(FaultyBilling("good-2"))
    assert runtime.feeder.faults()["billing"]["event"] == "Subscription.Subscribed"


def test_feeders_sharing_a_postgres_read_db_apply_each_event_once(
    runtime: Runtime, make_pg_database: Callable[..., str]
) -> None:
    book(runtime, *[f"sub-{i}" for i in range(10)])
    execute(runtime, c.AdvanceClock(command_id="mar", at=MAR))
    url = make_pg_database("shared")
    setup = ReadDB(url)
    for p in (BillingProjection(), MetricsProjection()):
        p.create(setup)
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def feed() -> None:
        db = ReadDB(url)
        try:
            feeder = LogFeeder(runtime.ledger, db, [BillingProjection(), MetricsProjection()], 7)
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
    tables = [*BillingProjection.tables, *MetricsProjection.tables]
    assert rows(setup, tables) == rows(runtime.db, tables)
    assert len(rows(setup, ["invoices"])["invoices"]) == 30
    assert get_faults(setup) == []
    setup.close()


def test_pipelined_writes_wait_for_a_read_and_fail_where_they_are_sent(
    make_pg_database: Callable[..., str],
) -> None:
    db = ReadDB(make_pg_database("pipe"))
    other = ReadDB(db.url)
    try:
        db.script(["CREATE TABLE t (k TEXT PRIMARY KEY, n BIGINT NOT NULL)"])
        with db.transaction(), db.pipelined():
            assert db.execute("INSERT INTO t (k, n) VALUES (?, ?)", ("a", 1)) == -1  # held back
            db.executemany("INSERT INTO t (k, n) VALUES (?, ?)", [("b", 2), ("c", 3)])
            assert db._pending is not None and len(db._pending) == 3  # nothing sent yet
            # a read sends what was written before it, and sees it
            assert db.query("SELECT SUM(n) AS s FROM t")[0]["s"] == 6
            db.execute("UPDATE t SET n = n + 10 WHERE k = ?", ("a",))
        assert [r["n"] for r in other.query("SELECT n FROM t ORDER BY k")] == [11, 2, 3]

        # a bad write raises when it is sent (the end of the block), and the savepoint
        # undoes the block's writes, sent or not, while the transaction goes on
        with db.transaction():
            with (
                pytest.raises(Exception, match="out of range"),
                db.savepoint(),
                db.pipelined(),
            ):
                db.execute("UPDATE t SET n = 0 WHERE k = ?", ("a",))
                db.query("SELECT 1 AS one")  # sends the update
                db.execute("UPDATE t SET n = ? WHERE k = ?", (TOO_BIG, "b"))
                db.execute("UPDATE t SET n = 0 WHERE k = ?", ("c",))
            db.execute("INSERT INTO t (k, n) VALUES (?, ?)", ("d", 4))
        assert db._pending is None
        assert [r["n"] for r in other.query("SELECT n FROM t ORDER BY k")] == [11, 2, 3, 4]

        # a savepoint inside a pipelined block undoes only what came after it
        with db.transaction(), db.pipelined():
            db.execute("UPDATE t SET n = 5 WHERE k = ?", ("d",))  # held back, before it
            with pytest.raises(ZeroDivisionError), db.savepoint():
                db.execute("UPDATE t SET n = 0 WHERE k = ?", ("a",))
                1 / 0  # noqa: B018 - a handler's bug
        assert [r["n"] for r in other.query("SELECT n FROM t ORDER BY k")] == [11, 2, 3, 5]
    finally:
        other.close()
        db.close()


def test_pipelined_writes_are_prepared_once_per_connection_and_sent_plain_when_they_cannot_be(
    make_pg_database: Callable[..., str],
) -> None:
    db = ReadDB(make_pg_database("prep"))
    other = ReadDB(db.url)
    insert = "INSERT INTO t (k, n) VALUES (?, ?)"
    unpreparable = "UPDATE t SET n = n + 7 WHERE k = 'k1' OR ? IS NULL"  # $1 of no type
    update = "UPDATE t SET n = n + ? WHERE k = ?"

    def prepared() -> list[str]:
        return [r["name"] for r in db.query("SELECT name FROM pg_prepared_statements")]

    try:
        db.script(["CREATE TABLE t (k TEXT PRIMARY KEY, n BIGINT NOT NULL)"])
        with db.transaction(), db.pipelined():
            for n in range(450):  # more than one send: the sender thread goes on meanwhile
                db.execute(insert, (f"k{n}", n))
            db.execute(unpreparable, ("x",))
            db.execute(update, (1, "k0"))
        assert other.query("SELECT COUNT(*) AS c, SUM(n) AS s FROM t")[0] == {
            "c": 450,
            "s": sum(range(450)) + 7 + 1,
        }
        assert sorted(prepared()) == ["subledger_0", "subledger_2"]  # one each
        assert db._prepared == {insert: "subledger_0", unpreparable: "", update: "subledger_2"}

        # a rebuild drops and makes the table again: the prepared statement still serves
        db.script(["DROP TABLE t", "CREATE TABLE t (k TEXT PRIMARY KEY, n BIGINT NOT NULL)"])
        with db.transaction(), db.pipelined():
            db.execute(insert, ("again", 1))
        assert other.query("SELECT k, n FROM t") == [{"k": "again", "n": 1}]

        # a failed send: what follows goes as plain text (as the one-by-one rerun does)
        with pytest.raises(Exception, match="out of range"), db.transaction(), db.pipelined():
            db.execute(insert, ("big", TOO_BIG))
        assert db._prepare is False
        with db.transaction(), db.pipelined():
            db.execute(insert, ("after", 2))
        assert [r["k"] for r in other.query("SELECT k FROM t ORDER BY k")] == ["after", "again"]
    finally:
        other.close()
        db.close()


TEXTS = ["", "plain", "it's", "''", "back\\slash", "\\'", "x'); DROP TABLE t; --", "é ü 漢字 🧾",
         "line\nbreak\ttab", "$1 %s ? ::text", "E'\\x41'", "a" * 5000]  # fmt: skip
INTS = [0, 1, -1, -5, 2**63 - 1, -(2**63), 10**12]


def test_pipelined_values_are_written_as_psycopg2_writes_them(
    make_pg_database: Callable[..., str],
) -> None:
    """The prepared writes' values are quoted by `_literal`, not psycopg2: the same text as
    `mogrify`'s for every kind it takes, and each value read back as it was written."""
    from projections.db import _literal

    db = ReadDB(make_pg_database("literals"))
    try:
        assert db._literals
        cur = db.conn.cursor()
        for value in [*TEXTS, *INTS, None, True, False]:
            assert _literal(value) == cur.mogrify("%s", (value,)), value
        for other in ["nul\x00", 1.5, b"raw", datetime(2024, 1, 1)]:
            assert _literal(other) is None  # psycopg2 writes (or refuses) those itself
        db.script(["CREATE TABLE t (k INTEGER PRIMARY KEY, s TEXT, n BIGINT, b BOOLEAN)"])
        rows = [(i, s, n, b) for i, (s, n, b) in enumerate(
            zip([*TEXTS, None], INTS * 2, [True, False, None] * 5, strict=False))]  # fmt: skip
        with db.transaction(), db.pipelined():
            for row in rows:
                db.execute("INSERT INTO t (k, s, n, b) VALUES (?, ?, ?, ?)", row)
        assert db._prepared  # sent as EXECUTEs of a prepared statement, the values by `_literal`
        many = [(100 + k, s, n, b) for k, s, n, b in rows]  # one statement: text, not prepared
        with db.transaction(), db.pipelined():
            db.execute(
                f"INSERT INTO t (k, s, n, b) VALUES {', '.join(['(?, ?, ?, ?)'] * len(many))}",
                [x for row in many for x in row],
            )
        found = db.query("SELECT k, s, n, b FROM t ORDER BY k")
        assert [tuple(r.values()) for r in found] == rows + many
        with pytest.raises(ValueError, match="NUL"), db.transaction(), db.pipelined():
            db.execute("INSERT INTO t (k, s) VALUES (?, ?)", (99, "nul\x00"))
        assert db.query("SELECT COUNT(*) AS c FROM t") == [{"c": 2 * len(rows)}]
    finally:
        db.close()


def test_a_failing_write_among_many_pipelined_is_pinned_to_its_own_event(
    runtime: Runtime,
) -> None:
    """Writes sent many at a time fail at the send, after the handler that made the bad one
    returned: the feeder applies the batch again one statement at a time, so the fault
    names that event and every event before it, in the same batch, is kept."""
    billing = FaultyBilling()
    runtime.feeder.projections[0] = billing
    runtime.ledger.execute(c.DefinePlan(command_id="plan", at=AT, plan_id="basic", name="Basic",
                                        currency="USD", pricing={"model": "flat", "amount": 1000,
                                                                 "tiers": []}))  # fmt: skip
    names = ["good-1", "good-2", "bad", "good-3"]
    for sub in names:  # applied to the book first, fed to the read models in one batch
        runtime.ledger.execute(c.RegisterCustomer(command_id=f"reg-{sub}", at=AT,
                                                  customer_id=f"cus-{sub}", name="Ada",
                                                  email=f"{sub}@example.com",
                                                  payment_token="tok_visa"))  # fmt: skip
        runtime.ledger.execute(c.Subscribe(command_id=f"sub-{sub}", at=AT,
                                           customer_id=f"cus-{sub}", plan_id="basic",
                                           subscription_id=sub))  # fmt: skip
    (bad,) = [
        r.position
        for r in runtime.feeder.records(0, 10_000)
        if r.name == "Subscription.Subscribed" and r.data["subscription_id"] == "bad"
    ]
    runtime.catch_up()
    assert runtime.feeder.positions()["billing"] == bad - 1
    (fault,) = get_faults(runtime.db)
    assert (fault["position"], fault["event"]) == (bad, "Subscription.Subscribed")
    assert "out of range" in fault["reason"]
    subs = runtime.db.query("SELECT subscription_id FROM subscriptions ORDER BY 1")
    assert [s["subscription_id"] for s in subs] == ["good-1", "good-2"]
    customers = runtime.db.query("SELECT customer_id FROM customers ORDER BY 1")
    assert [r["customer_id"] for r in customers] == ["cus-bad", "cus-good-1", "cus-good-2"]
