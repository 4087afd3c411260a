"""Driving a real Ledger (embedded SQLite under a temp dir) from tests, in a few words."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bootstrap import Config, Runtime
from domain import commands as c
from domain.identity import subscription_uuid
from projections import reports
from projections.db import ReadDB
from schemas.records import to_record


def T(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0):
    """A UTC instant: the only kind of time the ledger takes."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


FLAT_1000 = {"model": "flat", "amount": 1000, "tiers": []}


def flat(amount: int) -> dict[str, Any]:
    return {"model": "flat", "amount": amount, "tiers": []}


class Book:
    """One ledger on its own data dir, with short verbs for the commands tests issue."""

    def __init__(self, config: Config, id_prefix: str | None = None) -> None:
        self.config = config
        self.rt = Runtime(config)
        self.ledger = self.rt.ledger
        self._ids = itertools.count(1)
        # command ids are unique per book, so a second book on the same store never
        # repeats (and so silently no-ops) one of the first book's commands
        self._prefix = id_prefix or uuid.uuid4().hex[:8]

    @classmethod
    def embedded(cls, data_dir: Path, id_prefix: str | None = None, **overrides: Any) -> Book:
        return cls(Config(data_dir=data_dir, **overrides), id_prefix)

    def close(self) -> None:
        self.rt.close()

    @property
    def db(self) -> ReadDB:
        self.rt.catch_up()
        return self.rt.db

    # ---- commands ---------------------------------------------------------------------

    def next_id(self) -> str:
        return f"cmd-{self._prefix}-{next(self._ids):05d}"

    def run(self, cls: type[c.Command], at: datetime, **fields: Any) -> dict[str, Any]:
        fields.setdefault("command_id", self.next_id())
        fields.setdefault("actor", "tester")
        fields.setdefault("source", "pytest")
        outcome = self.ledger.execute(cls(at=at, **fields))
        self.rt.catch_up()
        return outcome

    def plan(
        self,
        plan_id: str,
        at: datetime,
        pricing: dict[str, Any] | None = None,
        *,
        currency: str = "USD",
        interval: str = "month",
        interval_count: int = 1,
        trial_days: int = 0,
        name: str | None = None,
    ) -> dict[str, Any]:
        return self.run(
            c.DefinePlan,
            at,
            plan_id=plan_id,
            name=name or plan_id.title(),
            currency=currency,
            pricing=pricing or FLAT_1000,
            interval=interval,
            interval_count=interval_count,
            trial_days=trial_days,
        )

    def customer(
        self,
        customer_id: str,
        at: datetime,
        *,
        token: str = "tok_visa",
        country: str = "US",
        name: str = "Ada Lovelace",
        email: str = "ada@example.com",
    ) -> dict[str, Any]:
        return self.run(
            c.RegisterCustomer,
            at,
            customer_id=customer_id,
            name=name,
            email=email,
            payment_token=token,
            country=country,
        )

    def subscribe(
        self, subscription_id: str, customer_id: str, plan_id: str, at: datetime, **fields: Any
    ) -> dict[str, Any]:
        return self.run(
            c.Subscribe,
            at,
            subscription_id=subscription_id,
            customer_id=customer_id,
            plan_id=plan_id,
            **fields,
        )

    def advance(self, to: datetime) -> dict[str, Any]:
        return self.run(c.AdvanceClock, to)

    # ---- reads ------------------------------------------------------------------------

    def invoices(self, subscription_id: str | None = None) -> list[dict[str, Any]]:
        return reports.invoices(self.db, subscription=subscription_id)

    def invoice(self, number: str) -> dict[str, Any]:
        (row,) = [i for i in self.invoices() if i["number"] == number]
        return row

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        row = reports.subscription(self.db, subscription_id)
        assert row is not None, subscription_id
        return row

    def events(self, subscription_id: str) -> list[Any]:
        """The subscription's domain events, from the store."""
        return self.ledger.history(subscription_uuid(subscription_id))

    def event_types(self, subscription_id: str) -> list[str]:
        return [type(e).__name__ for e in self.events(subscription_id)]

    def events_of(self, subscription_id: str, name: str) -> list[Any]:
        return [e for e in self.events(subscription_id) if type(e).__name__ == name]

    def records(self) -> list[Any]:
        """Every event in the store, in notification order, as EventRecords."""
        return self.rt.feeder.records(0, 1_000_000)

    def head(self) -> int:
        return self.rt.feeder.head()


def dump_tables(db: ReadDB, tables: list[str]) -> dict[str, list[tuple]]:
    """Every row of every table, in a stable order: for comparing read models."""
    out = {}
    for table in tables:
        rows = db.query(f"SELECT * FROM {table}")
        out[table] = sorted(
            (tuple(sorted(row.items())) for row in rows),
            key=repr,
        )
    return out


def line_kinds(invoice: dict[str, Any]) -> list[str]:
    return [line["kind"] for line in invoice["lines"]]


def lines_of(invoice: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [line for line in invoice["lines"] if line["kind"] == kind]


__all__ = [
    "FLAT_1000",
    "Book",
    "T",
    "dump_tables",
    "flat",
    "line_kinds",
    "lines_of",
    "to_record",
]


def query_plans(db: ReadDB, table: str, action: Any) -> list[str]:
    """SQLite's plan of each SELECT ... FROM `table` that `action()` makes on `db`, one line
    per statement."""
    seen: list[str] = []
    db.conn.set_trace_callback(
        lambda sql: (
            seen.append(sql) if sql.startswith("SELECT") and f"FROM {table}" in sql else None
        )
    )
    try:
        action()
    finally:
        db.conn.set_trace_callback(None)
    return [
        " ".join(row[3] for row in db.conn.execute(f"EXPLAIN QUERY PLAN {sql}")) for sql in seen
    ]
