"""Tamper evidence on a real SQLite store and a real PostgreSQL store: the hash chain written
beside the events catches an edited, deleted, inserted or swapped row, naming the place.

Every test runs on both back ends (`backend`, as in test_persistence.py); the store is edited
by hand with the database's own driver, as an intruder would.
"""

from __future__ import annotations

import gzip
import itertools
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from test_persistence import Backend, Driver, backend, flat  # noqa: F401

from adapters.chain_postgres import PostgresChainRecorder
from adapters.chain_recorder import AlreadySealed, verify_store
from bootstrap import Config, Runtime
from domain import chain
from domain import commands as c

JAN = datetime(2024, 1, 1, tzinfo=UTC)
OLD_BOOK = Path(__file__).resolve().parent.parent / "fixtures" / "book-0.1"


class Store:
    """The event store's rows, read and edited by hand (SQLite: rowid; PG: notification_id)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.pg = config.event_store is not None
        self.table = "ledger_events" if self.pg else "stored_events"
        self.id = "notification_id" if self.pg else "rowid"

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        if self.pg:
            conn = psycopg2.connect(self.config.event_store)
            try:
                with conn, conn.cursor() as cur:
                    cur.execute(sql.replace("?", "%s"), params)
                    return cur.fetchall() if cur.description else []
            finally:
                conn.close()
        with sqlite3.connect(self.config.data_dir / "events.sqlite") as conn:
            return conn.execute(sql, params).fetchall()

    def row(self, position: int) -> tuple[Any, int, bytes]:
        ((oid, version, state),) = self.run(
            f"SELECT originator_id, originator_version, state FROM {self.table}"
            f" WHERE {self.id} = ?",
            (position,),
        )
        return oid, version, bytes(state)

    def set_state(self, position: int, state: bytes) -> None:
        blob = psycopg2.Binary(state) if self.pg else state
        self.run(f"UPDATE {self.table} SET state = ? WHERE {self.id} = ?", (blob, position))

    def aggregate(self, position: int) -> str:
        return chain.originator_text(Runtime_id(self.row(position)[0]))


def Runtime_id(stored: Any) -> Any:
    """SQLite keeps a UUID as 32 hex digits; the chain names it by its UUID text."""
    from uuid import UUID

    return UUID(stored) if isinstance(stored, str) else stored


@pytest.fixture
def book(backend: Backend) -> Iterator[tuple[Runtime, Store]]:  # noqa: F811
    rt = Runtime(backend.config())
    try:
        play(Driver(rt))
        yield rt, Store(backend.config())
    finally:
        rt.close()


def play(d: Driver) -> None:
    d.run(c.DefinePlan, JAN, plan_id="basic", name="Basic", currency="USD", pricing=flat(1000))
    for customer_id in ("ada", "bob"):
        d.run(
            c.RegisterCustomer,
            JAN,
            customer_id=customer_id,
            name=customer_id.title(),
            email=f"{customer_id}@example.com",
            payment_token="tok_visa",
            country="US",
        )
        d.run(c.Subscribe, JAN, customer_id=customer_id, plan_id="basic",
              subscription_id=f"s-{customer_id}")  # fmt: skip
    d.run(c.AdvanceClock, datetime(2024, 3, 2, tzinfo=UTC))


def finding(rt: Runtime) -> chain.Finding:
    verdict = verify_store(rt.ledger.recorder)
    assert verdict.finding is not None, "the edit went unnoticed"
    return verdict.finding


def middle(rt: Runtime, store: Store) -> int:
    """A position inside the log, whose aggregate has a later event (so nothing is at an end)."""
    head = rt.ledger.recorder.max_notification_id()
    rows = store.run(f"SELECT {store.id}, originator_id, originator_version FROM {store.table}")
    later = {(oid, version - 1) for _, oid, version in rows}
    return next(p for p, oid, v in sorted(rows) if (oid, v) in later and 2 < p < head)


def test_an_untouched_store_verifies_and_its_head_is_the_last_checkpoint(book: Any) -> None:
    rt, store = book
    recorder = rt.ledger.recorder
    verdict = verify_store(recorder)
    head = recorder.chain_head()
    n = recorder.max_notification_id()
    assert verdict.finding is None and verdict.rows == n > 20
    assert (verdict.position, verdict.head) == (head.position, head.log_hash) == (n, head.log_hash)
    assert verify_store(recorder, expect=head.log_hash).expected_seen
    assert verify_store(recorder, start=n // 2).finding is None
    # every row of the store has its chain row, written with it
    assert len(store.run("SELECT * FROM subledger_chain")) == n + 1  # and the genesis row


def test_a_flipped_byte_in_one_event_is_caught_at_its_place(book: Any) -> None:
    rt, store = book
    at = middle(rt, store)
    _oid, version, state = store.row(at)
    store.set_state(at, state[:5] + bytes([state[5] ^ 0x01]) + state[6:])
    found = finding(rt)
    assert (found.position, found.originator_id, found.version) == (
        at, store.aggregate(at), version
    )  # fmt: skip
    assert found.problem.startswith("hash mismatch")


def test_a_deleted_row_is_caught(book: Any) -> None:
    rt, store = book
    at = middle(rt, store)
    _oid, version, _ = store.row(at)
    aggregate = store.aggregate(at)
    store.run(f"DELETE FROM {store.table} WHERE {store.id} = ?", (at,))
    found = finding(rt)
    assert (found.position, found.originator_id, found.version) == (at, aggregate, version)
    assert found.problem.startswith("missing row")


def test_a_deleted_row_with_its_chain_row_is_caught_all_the_same(book: Any) -> None:
    rt, store = book
    at = middle(rt, store)
    _oid, version, _ = store.row(at)
    aggregate = store.aggregate(at)
    store.run(f"DELETE FROM {store.table} WHERE {store.id} = ?", (at,))
    store.run("DELETE FROM subledger_chain WHERE notification_id = ?", (at,))
    found = finding(rt)
    # the aggregate's next event no longer follows its previous one
    assert found.originator_id == aggregate and found.version == version + 1
    assert found.problem == f"missing row: version {version} of this aggregate is absent"


def test_an_inserted_row_is_caught(book: Any) -> None:
    rt, store = book
    oid, _version, state = store.row(3)
    last = max(v for (v,) in store.run(
        f"SELECT originator_version FROM {store.table} WHERE originator_id = ?", (oid,)
    ))  # fmt: skip
    topic = store.run(f"SELECT topic FROM {store.table} WHERE {store.id} = 3")[0][0]
    blob = psycopg2.Binary(state) if store.pg else state
    store.run(
        f"INSERT INTO {store.table} (originator_id, originator_version, topic, state)"
        " VALUES (?, ?, ?, ?)",
        (oid, last + 1, topic, blob),
    )
    head = rt.ledger.recorder.max_notification_id()
    found = finding(rt)
    assert (found.position, found.originator_id, found.version) == (
        head, store.aggregate(3), last + 1
    )  # fmt: skip
    assert found.problem.startswith("extra row")


def test_two_swapped_rows_are_caught_at_the_first(book: Any) -> None:
    rt, store = book
    a = middle(rt, store)
    b = a + 3
    _, version_a, state_a = store.row(a)
    _, _, state_b = store.row(b)
    assert state_a != state_b
    store.set_state(a, state_b)
    store.set_state(b, state_a)
    found = finding(rt)
    assert (found.position, found.originator_id, found.version) == (
        a, store.aggregate(a), version_a
    )  # fmt: skip
    assert found.problem.startswith("hash mismatch")


def test_a_rewritten_chain_is_caught_by_the_anchored_head(book: Any) -> None:
    """An intruder who edits a row and recomputes the whole chain leaves it consistent: the
    head anchored outside the system (`--expect-head`) is what no longer matches."""
    rt, store = book
    recorder = rt.ledger.recorder
    anchored = recorder.chain_head().log_hash
    at = middle(rt, store)
    _, _, state = store.row(at)
    store.set_state(at, state.replace(b"Ada", b"Eve") if b"Ada" in state else state + b" ")
    store.run("DELETE FROM subledger_chain")
    recorder._sealed = False
    recorder.seal()  # the intruder's own chain
    verdict = verify_store(recorder, expect=anchored)
    assert verdict.finding is None and not verdict.expected_seen
    assert not verify_store(recorder, expect="00" * 32).expected_seen


def test_new_events_after_verify_keep_the_chain(book: Any) -> None:
    rt, _store = book
    Driver(rt, prefix="more").run(c.AdvanceClock, datetime(2024, 5, 2, tzinfo=UTC))
    verdict = verify_store(rt.ledger.recorder)
    assert verdict.finding is None and verdict.position == rt.ledger.recorder.max_notification_id()


CHAINED_ENV = Config.ledger_env


def unchained(config: Config) -> dict[str, str]:
    """The env eventsourcing's plain process recorder writes with: a store without a chain."""
    env = CHAINED_ENV(config)
    del env["PROCESS_RECORDER_TOPIC"]
    return env


def test_a_store_written_before_the_chain_is_sealed_then_verifies(
    backend: Backend,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with monkeypatch.context() as m:
        m.setattr(Config, "ledger_env", unchained)
        with Runtime(backend.config()) as rt:
            assert not hasattr(rt.ledger.recorder, "chain_sealed")
            play(Driver(rt))
    with Runtime(backend.config()) as rt:
        recorder = rt.ledger.recorder
        assert not recorder.chain_sealed()
        # new events on an unsealed store get no chain: it would start mid-store
        Driver(rt, prefix="later").run(c.AdvanceClock, datetime(2024, 4, 2, tzinfo=UTC))
        assert not recorder.chain_sealed()
        count, last = recorder.seal()
        n = recorder.max_notification_id()
        assert count == n and last is not None and last.position == n
        with pytest.raises(AlreadySealed):
            recorder.seal()
        assert verify_store(recorder).finding is None
        Driver(rt, prefix="sealed").run(c.AdvanceClock, datetime(2024, 5, 2, tzinfo=UTC))
        verdict = verify_store(recorder)
        assert verdict.finding is None and verdict.position == recorder.max_notification_id() > n
        store = Store(backend.config())
        at = middle(rt, store)
        _, _, state = store.row(at)
        store.set_state(at, bytes([state[0] ^ 0x80]) + state[1:])
        assert finding(rt).position == at


def test_the_old_store_fixture_seals_and_verifies(tmp_path: Path) -> None:
    data_dir = tmp_path / "old"
    data_dir.mkdir()
    for name in ("events.sqlite", "keys.sqlite"):
        with gzip.open(OLD_BOOK / f"{name}.gz") as src, open(data_dir / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    with Runtime(Config(data_dir=data_dir)) as rt:
        recorder = rt.ledger.recorder
        assert not recorder.chain_sealed()
        count, _ = recorder.seal()
        assert count == recorder.max_notification_id() > 100
        assert verify_store(recorder).finding is None


def test_two_writers_on_postgres_keep_one_log_chain(pg_database_pair: Any, tmp_path: Path) -> None:
    """Two runtimes (two connection pools) writing the same store at once: the table lock
    serialises their chain heads, so the log chain verifies (SQLite serialises writers)."""
    import threading

    config = Config(
        data_dir=tmp_path / "data",
        event_store=pg_database_pair.event_store_url,
        read_db=pg_database_pair.read_db_url,
    )
    first, second = Runtime(config), Runtime(config)
    try:
        assert isinstance(first.ledger.recorder, PostgresChainRecorder)
        ids = itertools.count()
        errors: list[BaseException] = []

        def write(rt: Runtime, who: str) -> None:
            try:
                for i in range(15):
                    rt.ledger.execute(
                        c.DefinePlan(
                            at=JAN,
                            actor="it",
                            source="pytest",
                            command_id=f"{who}-{i}-{next(ids)}",
                            plan_id=f"{who}-{i}",
                            name="P",
                            currency="USD",
                            pricing=flat(100),
                        )
                    )
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=write, args=(rt, w)) for rt, w in
                   ((first, "a"), (second, "b"))]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        verdict = verify_store(first.ledger.recorder)
        # a transaction that lost a conflict leaves a gap in PostgreSQL's ids: count the rows
        stored = Store(config).run("SELECT COUNT(*) FROM ledger_events")[0][0]
        assert verdict.finding is None and verdict.rows == stored > 30
    finally:
        first.close()
        second.close()


def test_erasing_a_customer_leaves_the_chain_intact(book: Any) -> None:
    """Erasure shreds the customer's key; the ciphertext stays as stored, so does the chain."""
    rt, store = book
    before = len(store.run("SELECT * FROM subledger_chain"))
    Driver(rt, prefix="erase").run(
        c.EraseCustomer, datetime(2024, 3, 3, tzinfo=UTC), customer_id="ada"
    )
    assert rt.ledger.customer_profile("ada")["erased"]
    verdict = verify_store(rt.ledger.recorder)
    assert verdict.finding is None and verdict.rows == rt.ledger.recorder.max_notification_id()
    assert len(store.run("SELECT * FROM subledger_chain")) > before


def test_a_write_reads_the_hashes_it_links_to_through_the_chains_index(tmp_path: Path) -> None:
    """Each write reads the hash before each aggregate it touches, all in one statement; on
    SQLite that statement searches the chain's index and never scans the table (a scan in
    every write would grow with the book)."""
    config = Config(data_dir=tmp_path / "data")
    with Runtime(config) as rt:
        Driver(rt).run(c.DefinePlan, JAN, plan_id="basic", name="Basic", currency="USD",
                       pricing=flat(1000))  # fmt: skip
        sql = rt.ledger.recorder._stored_hashes_sql(3)
    plan = [row[-1] for row in Store(config).run(f"EXPLAIN QUERY PLAN {sql}", ("a", 1) * 3)]
    assert any(step.startswith("SEARCH c USING INDEX subledger_chain_aggregate") for step in plan)
    assert not any(step.startswith(("SCAN c", "SCAN subledger_chain")) for step in plan), plan
