"""Projections dispatch on `on_<Aggregate>_<Event>`: every handler names a real event (a typo
would drop that event without a word), and the reports' one query builder filters right."""

from __future__ import annotations

import importlib
import pkgutil
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ledger_support import Book, T

import consumers
import projections
from domain import commands as c
from projections import reports
from projections.base import Projection, handler_name
from projections.billing import BillingProjection
from projections.db import ReadDB
from projections.metrics import MetricsProjection
from schemas.model import event_classes
from schemas.records import EventRecord

EVENTS = set(event_classes())


def project_projections() -> list[type[Projection]]:
    """Every Projection subclass the project defines (in projections/ and consumers/)."""
    for package in (projections, consumers):
        for module in pkgutil.iter_modules(package.__path__, f"{package.__name__}."):
            importlib.import_module(module.name)
    found, todo = [], [Projection]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith(("projections.", "consumers.")):
                found.append(sub)
    return found


def misnamed(cls: type[Projection]) -> list[str]:
    """The handlers of `cls` whose name is no event's."""
    return sorted(method for method, event in cls.handled_events().items() if event not in EVENTS)


def test_every_handler_of_every_projection_names_a_real_event() -> None:
    classes = project_projections()
    assert {BillingProjection, MetricsProjection} <= set(classes)
    assert {cls.__name__: misnamed(cls) for cls in classes} == {cls.__name__: [] for cls in classes}


def test_a_misspelt_handler_is_reported_by_name() -> None:
    class Typo(BillingProjection):
        def on_Subscription_Renewd(self, db: ReadDB, r: EventRecord) -> None:
            """Renewd: never called, since no event has that name."""

    assert misnamed(Typo) == ["on_Subscription_Renewd"]
    assert Typo.handled_events()["on_Subscription_Renewed"] == "Subscription.Renewed"


def test_metrics_follows_every_subscription_event_since_each_carries_status_and_mrr() -> None:
    subscription_events = {name for name in EVENTS if name.startswith("Subscription.")}
    assert len(subscription_events) >= 10
    assert set(MetricsProjection.handled_events().values()) == subscription_events


def test_billing_handles_the_catalog_customer_and_money_events() -> None:
    handled = set(BillingProjection.handled_events().values())
    assert {
        "Plan.Defined",
        "Customer.Registered",
        "Customer.Erased",
        "Subscription.Subscribed",
        "Subscription.Invoiced",
        "Subscription.PaymentSucceeded",
        "Subscription.PaymentFailed",
        "Subscription.Churned",
    } <= handled


class Recorder(Projection):
    """Notes which handler ran for which event."""

    name = "pytest_recorder"
    tables: dict[str, str] = {}

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def on_Plan_Defined(self, db: ReadDB, r: EventRecord) -> None:
        self.seen.append(("plan", r.aggregate_id))

    def on_Subscription_Renewed(self, db: ReadDB, r: EventRecord) -> None:
        self.seen.append(("renewed", r.aggregate_id))


def record(name: str, aggregate_id: str) -> EventRecord:
    aggregate_type, _, event_type = name.partition(".")
    at = datetime(2025, 1, 1, tzinfo=UTC)
    return EventRecord("e", aggregate_type, event_type, aggregate_id, 1, at, {}, {})


def test_apply_runs_the_handler_named_after_the_event_and_ignores_the_rest() -> None:
    db = ReadDB("sqlite:///:memory:")
    try:
        projection = Recorder()
        for name, aggregate in [
            ("Plan.Defined", "p1"),
            ("Subscription.Invoiced", "s1"),  # no handler: nothing happens
            ("Subscription.Renewed", "s1"),
            ("Plan.Renewed", "p1"),  # the event's name, not only its type, picks the handler
        ]:
            projection.apply(db, record(name, aggregate))
        assert projection.seen == [("plan", "p1"), ("renewed", "s1")]
        assert handler_name("Subscription.Renewed") == "on_Subscription_Renewed"
    finally:
        db.close()


# ---- the reports' one query builder -----------------------------------------------------


def test_where_skips_options_left_out_and_qualifies_columns_with_the_alias() -> None:
    assert reports.where([("customer_id", None), ("status", "")]) == ("", [])
    clause, params = reports.where(
        [
            ("customer_id", "ada"),
            ("status", ("active", "past_due")),
            ("cancel_at_period_end", 0),
            ("current_period_end <=", "2025-02-01T00:00:00Z"),
        ],
        alias="s",
    )
    assert clause == (
        " WHERE s.customer_id = ? AND s.status IN (?, ?) AND s.cancel_at_period_end = ?"
        " AND s.current_period_end <= ?"
    )
    assert params == ["ada", "active", "past_due", 0, "2025-02-01T00:00:00Z"]


@pytest.fixture
def two_customers(tmp_path: Path) -> Book:
    book = Book.embedded(tmp_path / "book")
    book.plan("basic", T(2025, 1, 1))
    book.plan("annual", T(2025, 1, 1), interval="year")
    book.customer("ada", T(2025, 1, 1))
    book.customer("bob", T(2025, 1, 1), token="tok_chargeDeclined")
    book.subscribe("s-ada", "ada", "basic", T(2025, 1, 1))
    book.subscribe("s-ada-2", "ada", "annual", T(2025, 1, 1))
    book.subscribe("s-bob", "bob", "basic", T(2025, 1, 1))
    book.run(c.Cancel, T(2025, 1, 5), subscription_id="s-ada-2")  # at period end
    return book


def test_report_filters_pick_rows_and_invoice_lines_through_one_builder(two_customers) -> None:
    book = two_customers
    try:
        ada = reports.invoices(book.db, customer="ada")
        assert {i["subscription_id"] for i in ada} == {"s-ada", "s-ada-2"}
        assert all(i["lines"] for i in ada)
        (bob,) = reports.invoices(book.db, customer="bob", status="open")
        assert bob["subscription_id"] == "s-bob" and bob["amount_due"] == 1000
        assert [line["amount"] for line in bob["lines"]] == [1000]
        assert reports.invoices(book.db, customer="bob", status="paid") == []
        bobs = reports.payments(book.db, customer="bob")  # the first charge and its retries
        assert bobs and {(p["customer_id"], p["outcome"]) for p in bobs} == {("bob", "failed")}
        assert reports.payments(book.db, customer="bob", outcome="succeeded") == []
        adas = reports.payments(book.db, customer="ada", outcome="succeeded")
        assert sorted(p["subscription_id"] for p in adas) == ["s-ada", "s-ada-2"]
        renewing = reports.subscriptions(book.db, renewing_before=T(2025, 3, 1))
        # s-ada-2 cancels at its period end; s-bob is past due and still renews
        assert [s["subscription_id"] for s in renewing] == ["s-ada", "s-bob"]
        only_ada = reports.subscriptions(book.db, customer="ada", renewing_before=T(2025, 3, 1))
        assert [s["subscription_id"] for s in only_ada] == ["s-ada"]
    finally:
        book.close()


class Untouchable:
    """A read DB, or an event's data, that fails on any use at all."""

    def __getattr__(self, name: str) -> None:
        raise AssertionError(f"used: {name}")

    def __getitem__(self, key: str) -> None:
        raise AssertionError(f"read: {key}")

    def __contains__(self, key: str) -> bool:
        raise AssertionError(f"asked for: {key}")

    def __iter__(self) -> None:
        raise AssertionError("iterated")


def test_no_read_model_is_touched_by_an_event_it_does_not_want() -> None:
    """A Kafka projection worker passes by, undecoded, every event its read model does not
    `want` (by the name in the message's header). So each such event of every kind there
    is, applied to that read model with no data at all, must change nothing: no statement,
    no error, nothing read of the event but its name."""
    from bootstrap import projections as read_models

    passed: dict[str, list[str]] = {}
    for projection in read_models():
        for name in sorted(EVENTS):
            if projection.wants(name):
                continue
            aggregate, _, kind = name.partition(".")
            record = EventRecord(event_id="e", aggregate_type=aggregate, type=kind,
                                 aggregate_id="a", version=1, at=T(2025, 1, 1),
                                 meta=Untouchable(), data=Untouchable())  # fmt: skip
            projection.apply(Untouchable(), record)  # type: ignore[arg-type]
            passed.setdefault(projection.name, []).append(name)
    # what is passed by: the ledger's own bookkeeping everywhere, and much more in some
    assert all("CommandReceipt.Applied" in names for names in passed.values())
    assert len(passed) == 5
    assert "Subscription.Renewed" in passed["webhooks"]
    assert "Subscription.Paused" not in passed["billing"]  # no handler; `apply` follows it
    assert "Subscription.PaymentSucceeded" not in passed["notifications"]  # a message's


def test_a_read_model_with_an_apply_of_its_own_that_says_nothing_more_wants_every_event() -> None:
    class OwnApply(Projection):
        name, tables = "own", {}

        def apply(self, db: ReadDB, record: EventRecord) -> None:
            """Looks at any event it likes."""

    class HandlersOnly(Projection):
        name, tables = "handlers", {}

        def on_Plan_Defined(self, db: ReadDB, r: EventRecord) -> None:
            """The one event it wants."""

    assert all(OwnApply().wants(name) for name in EVENTS)
    assert [name for name in sorted(EVENTS) if HandlersOnly().wants(name)] == ["Plan.Defined"]


def simulated_records(folder: Path) -> list[EventRecord]:
    """Every record of a simulated book of 40 customers over 4 months."""
    from domain.simulation import Simulation
    from schemas.records import to_record

    book = Book.embedded(folder)
    try:
        sim = Simulation(customers=40, months=4, seed=5)
        book.ledger.execute_batch(sim.setup())
        for index in range(sim.days):
            day, commands = sim.day(index)
            clock = c.AdvanceClock(command_id=f"clock-{index}", at=day, actor="t", source="t")
            book.ledger.execute_batch([clock, *commands])
        ledger = book.ledger
        return [
            to_record(ledger.mapper.to_domain_event(n), n.id)
            for n in ledger.recorder.select_notifications(start=1, limit=1_000_000)
        ]
    finally:
        book.close()


def test_read_models_never_change_the_records_they_are_given(tmp_path: Path) -> None:
    """serve's projection workers share each decoded record (consumers/decoded.py): a
    simulated book's every record, applied to each read model in turn, is afterwards
    equal to a copy taken before."""
    import copy

    from bootstrap import projections as read_models

    records = simulated_records(tmp_path / "data")
    before = copy.deepcopy(records)
    assert len({r.name for r in records}) >= 15  # a book with much in it
    for projection in read_models():
        db = ReadDB(f"sqlite:///{tmp_path / f'{projection.name}.sqlite'}")
        try:
            projection.create(db)
            with db.transaction():
                for record in records:
                    projection.apply(db, record)
        finally:
            db.close()
        assert records == before, projection.name


def test_read_models_are_the_same_applied_one_by_one_or_in_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a batch a read model writes some rows once, as the batch's last event leaves them
    (`LastValues`): a simulated book applied one event at a time, and in batches of 7 and of
    500 (with what metrics and notifications keep in memory forgotten every few events, so
    they read rows back in the middle of a batch), gives every table the same rows."""
    import projections.notifications
    from bootstrap import projections as read_models

    records = simulated_records(tmp_path / "data")

    def rows(db: ReadDB, table: str) -> list[str]:
        return sorted(repr(sorted(row.items())) for row in db.query(f"SELECT * FROM {table}"))

    def tables(size: int) -> dict[str, dict[str, list[str]]]:
        """Each read model's tables, the book applied in batches of `size` (0: one by one)."""
        found = {}
        for projection in read_models():
            if isinstance(projection, MetricsProjection) and size:
                projection._rows.limit = 3
            db = ReadDB(f"sqlite:///{tmp_path / f'{projection.name}-{size}.sqlite'}")
            try:
                projection.create(db)
                for i in range(0, len(records), size or len(records)):
                    held = projection.batch(db) if size else nullcontext()
                    with db.transaction(), held:
                        for record in records[i : i + (size or len(records))]:
                            projection.apply(db, record)
                found[projection.name] = {t: rows(db, t) for t in projection.tables}
            finally:
                db.close()
        return found

    one_by_one = tables(0)
    monkeypatch.setattr(projections.notifications, "KEPT", 3)
    assert sum(len(rows) for rows in one_by_one["billing"].values()) > 300
    assert tables(7) == one_by_one
    assert tables(500) == one_by_one


def test_a_batch_inside_a_batch_is_part_of_the_outer_one(tmp_path: Path) -> None:
    """What the read model holds back is written once, at the end of the outer batch: an
    inner one neither writes it early nor forgets it."""
    from projections.exports import ExportsProjection

    exports, db = ExportsProjection(), ReadDB(f"sqlite:///{tmp_path / 'read.sqlite'}")
    try:
        exports.create(db)
        registered = EventRecord(event_id="e1", aggregate_type="Customer", type="Registered",
                                 aggregate_id="a", version=1, at=T(2025, 1, 1),
                                 meta={}, data={"customer_id": "c1"})  # fmt: skip
        with db.transaction(), exports.batch(db):
            with exports.batch(db):
                exports.apply(db, registered)
            assert db.query("SELECT COUNT(*) AS n FROM export_changes") == [{"n": 0}]
            assert exports.holding
        assert db.query("SELECT kind, record_id FROM export_changes") == [
            {"kind": "customers", "record_id": "c1"}
        ]
        assert not exports.holding
    finally:
        db.close()
