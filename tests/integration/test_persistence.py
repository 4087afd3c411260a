"""The same ledger on SQLite and on the real PostgreSQL: the same book, byte for byte.

Every test here runs its one body on both back ends (`backend` is parametrized). PostgreSQL
comes from ops/services through the `pg_database_pair` fixture: if it is not there the test
FAILS, it never skips.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bootstrap import Config, Runtime
from domain import commands as c
from domain.identity import CLOCK_ID, INVOICE_SEQUENCE_ID, customer_uuid, subscription_uuid
from domain.ledger.unit_of_work import UnitOfWork
from projections import finance, reports

JAN, APR = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC)


def T(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


class Backend:
    """Makes Configs for one back end: `config()` for the store, `config(fresh_read=True)`
    for the same event store with a new, empty read-model database."""

    def __init__(self, name: str, make: Callable[[bool], Config]) -> None:
        self.name = name
        self._make = make

    def config(self, fresh_read: bool = False) -> Config:
        return self._make(fresh_read)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        reads = itertools.count(1)

        def sqlite(fresh_read: bool) -> Config:
            read = f"sqlite:///{tmp_path / f'read-{next(reads)}.sqlite'}" if fresh_read else None
            return Config(data_dir=tmp_path / "data", read_db=read)

        return Backend("sqlite", sqlite)
    pair = request.getfixturevalue("pg_database_pair")
    make_pg_database = request.getfixturevalue("make_pg_database")

    def postgres(fresh_read: bool) -> Config:
        read = make_pg_database("read2") if fresh_read else pair.read_db_url
        return Config(data_dir=tmp_path / "data", event_store=pair.event_store_url, read_db=read)

    return Backend("postgres", postgres)


class Driver:
    """Issues commands with unique ids and answers from caught-up read models."""

    def __init__(self, runtime: Runtime, prefix: str = "cmd") -> None:
        self.rt = runtime
        self.ids = itertools.count(1)
        self.prefix = prefix

    def run(self, cls: type[c.Command], at: datetime, **fields: Any) -> dict[str, Any]:
        fields.setdefault("command_id", f"{self.prefix}-{next(self.ids)}")
        outcome = self.rt.ledger.execute(cls(at=at, actor="it", source="pytest", **fields))
        self.rt.catch_up()
        return outcome

    def invoices(self) -> list[dict[str, Any]]:
        self.rt.catch_up()
        return reports.invoices(self.rt.db)


@pytest.fixture
def runtime(backend: Backend) -> Iterator[Runtime]:
    rt = Runtime(backend.config())
    try:
        yield rt
    finally:
        rt.close()


def flat(amount: int) -> dict[str, Any]:
    return {"model": "flat", "amount": amount, "tiers": []}


def play_small_book(d: Driver) -> None:
    """Three plans, four customers (one GB, one declining), an upgrade, three months."""
    d.run(c.DefinePlan, JAN, plan_id="basic", name="Basic", currency="USD", pricing=flat(1000))
    d.run(c.DefinePlan, JAN, plan_id="pro", name="Pro", currency="USD", pricing=flat(3000))
    d.run(
        c.DefinePlan,
        JAN,
        plan_id="seats",
        name="Seats",
        currency="EUR",
        pricing={"model": "per_unit", "amount": 500, "tiers": []},
    )
    d.run(c.SetTaxRate, JAN, country="GB", rate_ppm=200_000)
    d.run(c.DefineCoupon, JAN, code="HALF", percent_off_bp=5000, duration="repeating", periods=2)
    for customer_id, token, country in [
        ("ada", "tok_visa", "US"),
        ("alan", "tok_visa", "GB"),
        ("bob", "tok_chargeDeclined", "US"),
        ("eve", "tok_visa", "DE"),
    ]:
        d.run(
            c.RegisterCustomer,
            JAN,
            customer_id=customer_id,
            name=customer_id.title(),
            email=f"{customer_id}@example.com",
            payment_token=token,
            country=country,
        )
    d.run(c.Subscribe, T(2024, 1, 1), customer_id="ada", plan_id="basic", subscription_id="s-ada")
    d.run(
        c.Subscribe,
        T(2024, 1, 5),
        customer_id="alan",
        plan_id="basic",
        subscription_id="s-alan",
        coupon="HALF",
    )
    d.run(c.Subscribe, T(2024, 1, 10), customer_id="bob", plan_id="pro", subscription_id="s-bob")
    d.run(
        c.Subscribe,
        T(2024, 1, 15),
        customer_id="eve",
        plan_id="seats",
        subscription_id="s-eve",
        quantity=3,
    )
    d.run(c.AdvanceClock, T(2024, 1, 16, 12))
    d.run(c.ChangePlan, T(2024, 1, 16, 12), subscription_id="s-ada", plan_id="pro")
    d.run(c.AdvanceClock, T(2024, 2, 20))
    d.run(c.Cancel, T(2024, 2, 20), subscription_id="s-alan")
    d.run(c.AdvanceClock, APR)


def snapshot(rt: Runtime) -> dict[str, Any]:
    rt.catch_up()
    db = rt.db
    return {
        "invoices": reports.invoices(db),
        "subscriptions": [
            reports.subscription(db, s) for s in ("s-ada", "s-alan", "s-bob", "s-eve")
        ],
        "mrr": reports.mrr(db),
        "mrr_feb": reports.mrr(db, T(2024, 2, 1)),
        "movements": reports.movements(db, JAN, APR),
        "churn": reports.churn(db, T(2024, 2, 1), APR),
        "cohorts": reports.cohorts(db),
        "revenue": reports.revenue(db, JAN, APR),
        # finance figures read the same tables through the same SQL on both backends
        "recognition": finance.recognition(db, JAN, APR),
        "deferred": finance.deferred_invoices(db, T(2024, 2, 10, 12)),
        "cohorts_by_revenue": finance.cohorts_by_revenue(db),
        "renewals": finance.renewals(db, T(2024, 3, 20), timedelta(days=30)),
    }


def test_a_small_book_bills_exactly_the_same(runtime: Runtime) -> None:
    play_small_book(Driver(runtime))
    invoices = Driver(runtime).invoices()
    assert [
        (i["number"], i["subscription_id"], i["reason"], i["total"], i["status"]) for i in invoices
    ] == [
        ("INV-000001", "s-ada", "subscription_create", 1000, "paid"),
        ("INV-000002", "s-alan", "subscription_create", 600, "paid"),  # 500 + 20% tax
        ("INV-000003", "s-bob", "subscription_create", 3000, "uncollectible"),
        ("INV-000004", "s-eve", "subscription_create", 1500, "paid"),
        ("INV-000005", "s-ada", "proration", 1000, "paid"),  # half of 3000 - half of 1000
        ("INV-000006", "s-ada", "renewal", 3000, "paid"),
        ("INV-000007", "s-alan", "renewal", 600, "paid"),
        ("INV-000008", "s-eve", "renewal", 1500, "paid"),
        ("INV-000009", "s-ada", "renewal", 3000, "paid"),
        ("INV-000010", "s-eve", "renewal", 1500, "paid"),
        ("INV-000011", "s-ada", "renewal", 3000, "paid"),  # April 1st is due at April 1st
    ]
    assert [(ln["kind"], ln["amount"]) for ln in invoices[1]["lines"]] == [
        ("recurring", 1000),
        ("discount", -500),
        ("tax", 100),
    ]
    assert [(ln["kind"], ln["amount"]) for ln in invoices[4]["lines"]] == [
        ("proration_credit", -500),
        ("proration_charge", 1500),
    ]
    assert invoices[3]["currency"] == "EUR"
    assert invoices[2]["attempts"] == 5
    mrr = reports.mrr(runtime.db)
    assert (mrr["USD"]["mrr"], mrr["USD"]["paying_customers"]) == (3000, 1)
    assert (mrr["EUR"]["mrr"], mrr["EUR"]["active_subscriptions"]) == (1500, 1)
    alan = reports.subscription(runtime.db, "s-alan")
    assert (alan["status"], alan["canceled_at"]) == ("canceled", "2024-03-05T00:00:00Z")
    revenue = reports.revenue(runtime.db, JAN, APR)["USD"]
    assert (revenue["written_off"], revenue["tax"]) == (3000, 200)


def test_sqlite_and_postgresql_give_identical_books(tmp_path: Path, pg_database_pair: Any) -> None:
    snapshots = []
    for config in (
        Config(data_dir=tmp_path / "lite"),
        Config(
            data_dir=tmp_path / "pg",
            event_store=pg_database_pair.event_store_url,
            read_db=pg_database_pair.read_db_url,
        ),
    ):
        with Runtime(config) as rt:
            play_small_book(Driver(rt))
            snapshots.append(snapshot(rt))
    lite, pg = snapshots
    assert lite["invoices"] and lite["mrr"]
    for key in lite:
        assert pg[key] == lite[key], key


def test_a_second_runtime_reloads_the_same_book_from_the_store(
    backend: Backend, runtime: Runtime
) -> None:
    play_small_book(Driver(runtime))
    before = snapshot(runtime)
    runtime.close()

    with Runtime(backend.config(fresh_read=True)) as again:
        assert reports.invoices(again.db) == []  # a new read model, still empty
        assert snapshot(again) == before  # ... rebuilt from the event store
        assert again.ledger.clock_now() == APR
        assert again.ledger.customer_profile("ada")["email"] == "ada@example.com"
        d = Driver(again, prefix="again")
        d.run(c.AdvanceClock, T(2024, 5, 1))
        assert [(i["number"], i["subscription_id"]) for i in d.invoices()][-2:] == [
            ("INV-000012", "s-eve"),
            ("INV-000013", "s-ada"),
        ]


def test_rebuilding_the_read_models_gives_the_live_rows(runtime: Runtime) -> None:
    play_small_book(Driver(runtime))
    before = snapshot(runtime)
    for projection in runtime.projections:
        runtime.feeder.rebuild(projection)
    assert snapshot(runtime) == before


def test_a_repeated_command_id_is_a_no_op(runtime: Runtime) -> None:
    d = Driver(runtime)
    d.run(c.DefinePlan, JAN, plan_id="basic", name="Basic", currency="USD", pricing=flat(1000))
    d.run(
        c.RegisterCustomer,
        JAN,
        customer_id="ada",
        name="Ada",
        email="ada@example.com",
        payment_token="tok_visa",
    )
    signup = {"customer_id": "ada", "plan_id": "basic", "subscription_id": "s1"}
    first = d.run(c.Subscribe, JAN, command_id="signup", **signup)
    head = runtime.ledger.recorder.max_notification_id()
    again = d.run(c.Subscribe, JAN, command_id="signup", **signup)
    assert again == {**first, "duplicate": True}
    assert runtime.ledger.recorder.max_notification_id() == head
    assert [i["number"] for i in d.invoices()] == ["INV-000001"]


def test_erasure_destroys_the_key_and_keeps_the_invoices(runtime: Runtime) -> None:
    d = Driver(runtime)
    play_small_book(d)
    cid = str(customer_uuid("ada"))
    ciphertext = runtime.ledger.history(customer_uuid("ada"))[0].personal
    assert runtime.keys.get(cid) is not None

    d.run(c.EraseCustomer, T(2024, 4, 2), customer_id="ada")

    assert runtime.keys.get(cid) is None
    assert runtime.ledger.vault.decrypt(cid, ciphertext) is None
    assert runtime.ledger.customer_profile("ada") == {
        "customer_id": "ada",
        "country": "US",
        "erased": True,
    }
    ada = [i for i in d.invoices() if i["customer_id"] == "ada"]
    assert [i["total"] for i in ada] == [1000, 1000, 3000, 3000, 3000]
    # the other customers are untouched
    assert runtime.ledger.customer_profile("eve")["name"] == "Eve"


def test_two_writers_at_once_keep_invoice_numbers_gapless(backend: Backend) -> None:
    """Two processes' worth of ledgers on one store, subscribing at the same time: optimistic
    concurrency on the invoice sequence makes one redo, so numbers stay gapless and unique."""
    import threading

    setup = Runtime(backend.config())
    try:
        setup.ledger.execute(
            c.DefinePlan(command_id="plan", at=JAN, plan_id="basic", name="Basic",
                         currency="USD", pricing=flat(1000))
        )  # fmt: skip
    finally:
        setup.close()
    errors: list[BaseException] = []
    refused: list[BaseException] = []

    def writer(name: str) -> None:
        runtime = Runtime(backend.config())
        try:
            for i in range(25):
                results = runtime.ledger.execute_batch([
                    c.RegisterCustomer(command_id=f"{name}-reg-{i}", at=JAN,
                                       customer_id=f"{name}-{i}", name="C",
                                       email=f"{name}{i}@example.com", payment_token="tok_visa"),
                    c.Subscribe(command_id=f"{name}-sub-{i}", at=JAN, customer_id=f"{name}-{i}",
                                plan_id="basic", subscription_id=f"{name}-{i}"),
                ])  # fmt: skip
                # a race with the other writer is a conflict to redo, never a refusal
                refused.extend(r.error for r in results if r.error is not None)
        except BaseException as exc:
            errors.append(exc)
        finally:
            runtime.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert refused == []
    check = Runtime(backend.config())
    try:
        check.catch_up()
        numbers = sorted(int(i["number"].removeprefix("INV-")) for i in reports.invoices(check.db))
        assert numbers == list(range(1, 51))
    finally:
        check.close()


@pytest.mark.parametrize(
    "singleton",
    [INVOICE_SEQUENCE_ID, CLOCK_ID],
    ids=["invoice sequence", "ledger clock"],
)
def test_a_book_started_by_another_writer_meanwhile_is_a_redo_not_a_refusal(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, singleton: Any
) -> None:
    """The race CI once lost a subscription to: writer A looks for the invoice sequence
    (or the ledger clock) and finds none; writer B starts it and commits; A starts its own.
    A's flush conflicts and its batch is redone, finding B's: both commands go through,
    numbers gapless — never "already exists" for a command that broke no rule."""

    def subscribe(runtime: Runtime, name: str) -> list[Any]:  # the book's first commands
        return runtime.ledger.execute_batch([
            c.DefinePlan(command_id=f"{name}-plan", at=APR, plan_id=f"{name}-basic",
                         name="Basic", currency="USD", pricing=flat(1000)),
            c.RegisterCustomer(command_id=f"{name}-reg", at=APR, customer_id=name, name="C",
                               email=f"{name}@example.com", payment_token="tok_visa"),
            c.Subscribe(command_id=f"{name}-sub", at=APR, customer_id=name,
                        plan_id=f"{name}-basic", subscription_id=name),
        ])  # fmt: skip

    a, b = Runtime(backend.config()), Runtime(backend.config())
    try:
        find, mine = UnitOfWork.find, a.ledger.repository
        raced: list[Any] = []

        def find_then_lose_the_race(self: UnitOfWork, cls: type, id: Any) -> Any:
            found = find(self, cls, id)
            if found is None and id == singleton and not raced and self.repository is mine:
                raced.extend(subscribe(b, "bee"))  # B starts it and commits, just now
            return found

        monkeypatch.setattr(UnitOfWork, "find", find_then_lose_the_race)
        results = subscribe(a, "ada")
    finally:
        a.close()
        b.close()
    assert [r.error for r in raced] == [None, None, None]
    assert [r.error for r in results] == [None, None, None]
    check = Runtime(backend.config())
    try:
        check.catch_up()
        numbers = {i["subscription_id"]: i["number"] for i in reports.invoices(check.db)}
        assert numbers == {"bee": "INV-000001", "ada": "INV-000002"}
    finally:
        check.close()


def test_a_batch_reads_its_aggregates_in_one_query_and_sees_other_writers(
    tmp_path: Path, pg_database_pair: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a batch's receipts, customers and subscriptions are read ahead in one
    query (Ledger.preload), not one each; a copy cached before another writer changed an
    aggregate is brought up to date by that read, so the batch meets the other's change."""
    config = Config(
        data_dir=tmp_path / "data",
        event_store=pg_database_pair.event_store_url,
        read_db=pg_database_pair.read_db_url,
    )
    a, b = Runtime(config), Runtime(config)
    try:
        a.ledger.execute(c.DefinePlan(command_id="plan", at=JAN, plan_id="basic", name="Basic",
                                      currency="USD", pricing=flat(1000)))  # fmt: skip
        signups: list[c.Command] = []
        for i in range(20):
            signups += [
                c.RegisterCustomer(command_id=f"reg-{i}", at=JAN, customer_id=f"cus-{i}",
                                   name="C", email=f"c{i}@example.com", payment_token="tok_visa"),
                c.Subscribe(command_id=f"sub-{i}", at=JAN, customer_id=f"cus-{i}",
                            plan_id="basic", subscription_id=f"sub-{i}"),
            ]  # fmt: skip
        reads: list[Any] = []
        select_events = type(a.ledger.recorder).select_events

        def counted(self: Any, originator_id: Any, **kwargs: Any) -> Any:
            reads.append(originator_id)
            return select_events(self, originator_id, **kwargs)

        monkeypatch.setattr(type(a.ledger.recorder), "select_events", counted)
        settle, a.ledger.after_commit = a.ledger.after_commit, None  # the batch's reads only
        results = a.ledger.execute_batch(signups)
        a.ledger.after_commit = settle
        assert [r.error for r in results] == [None] * 40
        assert len(reads) <= 2, reads  # 40 commands, 80 aggregates looked up: none one by one
        from domain.customer import Customer

        cached = a.ledger.get(Customer, customer_uuid("cus-3"))
        assert cached is not None and cached.erased is False  # cached in `a` now

        b.ledger.execute(c.EraseCustomer(command_id="erase-3", at=JAN, customer_id="cus-3"))
        (late,) = a.ledger.execute_batch([
            c.Subscribe(command_id="sub-late", at=JAN, customer_id="cus-3", plan_id="basic",
                        subscription_id="sub-late"),
        ])  # fmt: skip
        assert late.error is not None and "erased" in str(late.error)
        (again,) = a.ledger.execute_batch([
            c.Subscribe(command_id="sub-0", at=JAN, customer_id="cus-0", plan_id="basic",
                        subscription_id="sub-0"),
        ])  # fmt: skip
        assert again.outcome is not None and again.outcome["duplicate"] is True
    finally:
        a.close()
        b.close()


def test_relay_positions_opened_at_once_on_a_new_store_all_open(
    make_pg_database: Callable[..., str],
) -> None:
    """The relay and `projections status` each open the relay's position table when they
    start, and `serve` makes it before its workers: PostgreSQL's CREATE TABLE IF NOT EXISTS
    run at once by several connections fails all but one (a duplicate pg_type row)."""
    import threading

    from adapters import postgres
    from adapters.postgres import RelayPosition

    url = make_pg_database("relay")
    opened: list[RelayPosition] = []
    errors: list[Exception] = []
    ready = threading.Barrier(8)

    def open_one(n: int) -> None:
        ready.wait()
        try:
            if n % 2:
                opened.append(RelayPosition(url, "events"))
            else:
                postgres.execute(url, postgres.RELAY_POSITION_DDL)  # serve's
        except Exception as exc:  # the race: UniqueViolation on pg_type
            errors.append(exc)

    threads = [threading.Thread(target=open_one, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        opened[0].set(41)
        assert [p.get() for p in opened] == [41] * 4
    finally:
        for position in opened:
            position.conn.close()


def test_due_work_reads_its_subscriptions_ahead_and_gives_the_sqlite_book(
    tmp_path: Path, pg_database_pair: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a clock advance over subscriptions renewing at several instants, in small
    chunks, with each instant's charges settled in process before the next (one card
    declines), reads its subscriptions and their customers ahead, a query for many
    (Ledger.preload_subscriptions), also after each settle and chunk let them go, not one
    each; the invoices, payments and subscriptions are those of the same book on SQLite.
    (The payments worker reads each request's subscription and customer afresh just before
    it asks the gateway: not counted here.)"""
    subscribers, chunk = 12, 4
    configs = {
        "sqlite": Config(data_dir=tmp_path / "lite"),
        "postgres": Config(
            data_dir=tmp_path / "pg",
            event_store=pg_database_pair.event_store_url,
            read_db=pg_database_pair.read_db_url,
        ),
    }
    books, reads, settling = {}, [], [False]
    for name, config in configs.items():
        with Runtime(config) as rt:
            rt.ledger.settings = replace(rt.ledger.settings, chunk_size=chunk)
            d = Driver(rt)
            d.run(c.DefinePlan, JAN, plan_id="basic", name="Basic", currency="USD",
                  pricing=flat(1000))  # fmt: skip
            for n in range(subscribers):
                token = "tok_chargeDeclined" if n == 5 else "tok_visa"
                d.run(c.RegisterCustomer, JAN, customer_id=f"cus-{n}", name="C",
                      email=f"c{n}@example.com", payment_token=token)  # fmt: skip
                d.run(c.Subscribe, T(2024, 1, 1, n % 3), customer_id=f"cus-{n}",
                      plan_id="basic", subscription_id=f"s-{n}")  # fmt: skip
            if name == "postgres":

                def counted(
                    self: Any,
                    originator_id: Any,
                    real: Any = type(rt.ledger.recorder).select_events,
                    **kwargs: Any,
                ) -> Any:
                    if not settling[0]:
                        reads.append(originator_id)
                    return real(self, originator_id, **kwargs)

                def settle(payments: Any = rt.ledger.after_commit) -> Any:
                    settling[0] = True
                    try:
                        return payments()
                    finally:
                        settling[0] = False

                monkeypatch.setattr(type(rt.ledger.recorder), "select_events", counted)
                rt.ledger.after_commit = settle
            done = d.run(c.AdvanceClock, T(2024, 3, 1, 12))
            # two renewals each, but the declined card's: four retries, then it churns
            assert (done["renewals"], done["retries"], done["churned"]) == (22, 4, 1)
            rt.catch_up()
            books[name] = {
                "invoices": reports.invoices(rt.db),
                "subscriptions": [
                    reports.subscription(rt.db, f"s-{n}") for n in range(subscribers)
                ],
                "payments": rt.db.query(
                    "SELECT number, subscription_id, amount, at, outcome, attempt, reason,"
                    " reference FROM payments ORDER BY number, attempt"
                ),
            }
    assert books["postgres"] == books["sqlite"]
    assert len(books["sqlite"]["invoices"]) == subscribers + 22
    # one by one, each subscription and customer would be read again after every settle
    # and chunk; what is read one by one is the plan's, clock's and sequence's news, once a
    # commit
    ids = {subscription_uuid(f"s-{n}") for n in range(subscribers)}
    ids |= {customer_uuid(f"cus-{n}") for n in range(subscribers)}
    assert reads and not ids & set(reads), reads
