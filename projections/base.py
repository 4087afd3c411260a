"""A projection applies event records to its own tables, in the transaction it is given."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any, ClassVar

from projections.analytics import drop_views
from projections.db import ReadDB
from schemas.records import EventRecord

POSITIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS projection_positions ("
    " projection TEXT NOT NULL, source TEXT NOT NULL, position BIGINT NOT NULL,"
    " PRIMARY KEY (projection, source))"
)
FAULTS_DDL = (
    "CREATE TABLE IF NOT EXISTS projection_faults ("
    " projection TEXT NOT NULL, source TEXT NOT NULL, position BIGINT NOT NULL,"
    " event TEXT NOT NULL, reason TEXT NOT NULL, recorded_at TEXT NOT NULL,"
    " PRIMARY KEY (projection, source))"
)

# serve's workers, each process's line (consumers/health.py writes it, `status` reads it)
WORKERS_DDL = (
    "CREATE TABLE IF NOT EXISTS serve_workers (process TEXT NOT NULL, worker TEXT NOT NULL,"
    " state TEXT NOT NULL, reconnects INTEGER NOT NULL, last_reason TEXT,"
    " last_reconnect_at TEXT, updated_at TEXT NOT NULL, PRIMARY KEY (process, worker))"
)


@lru_cache(maxsize=4096)  # a book's events share their times: a renewal day's, say
def ts(at: datetime | None) -> str | None:
    """Stored times: ISO 8601 UTC to the second, so they sort as text in SQLite and PG."""
    if at is None:
        return None
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ts(text: str) -> datetime:
    """A stored time (`ts`'s text) as an aware UTC datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def dumps(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, default=lambda v: ts(v) if isinstance(v, datetime) else str(v)
    )


class Projection:
    """Subclasses name their tables and define `on_<Aggregate>_<Event>(db, record)`."""

    name: ClassVar[str]
    tables: ClassVar[dict[str, str]]  # table name -> CREATE TABLE statement
    # CREATE INDEX IF NOT EXISTS statements for the lookups its handlers make on other
    # columns than a key (dropped with their tables, made again on an existing read DB)
    indexes: ClassVar[tuple[str, ...]] = ()

    def create(self, db: ReadDB) -> None:
        db.script([*self.tables.values(), *self.indexes, POSITIONS_DDL, FAULTS_DDL, WORKERS_DDL])

    def drop(self, db: ReadDB) -> None:
        """Drop the tables, and the analysts' views over them (`create_views` makes them again
        once every table is back: PostgreSQL drops no table a view reads)."""
        with db.transaction():
            drop_views(db)
            for table in self.tables:
                db.execute(f"DROP TABLE IF EXISTS {table}")
            db.execute(POSITIONS_DDL)
            db.execute("DELETE FROM projection_positions WHERE projection = ?", (self.name,))
            db.execute(FAULTS_DDL)
            db.execute("DELETE FROM projection_faults WHERE projection = ?", (self.name,))

    # the aggregates every event of which an `apply` of its own looks at, besides the events
    # it has handlers for; None: with `apply` its own, it may look at any event
    follows: ClassVar[tuple[str, ...] | None] = None

    def wants(self, event: str) -> bool:
        """Whether an event of this name (`Subscription.Renewed`) can change this read model:
        one it has a handler for, or any event of an aggregate it `follows`; every event if
        it has an `apply` of its own and says nothing. A Kafka worker passes the others by
        undecoded (a test applies every other event there is to each read model, with data
        that cannot be read, and none may touch it)."""
        if event in _handled(type(self)):
            return True
        if self.follows is None:
            return type(self).apply is not Projection.apply
        return event.partition(".")[0] in self.follows

    # True inside `batch`: a read model may then hold back a write that a later event of the
    # batch may make moot, and make it once at the batch's end (`LastValues`)
    holding = False

    @contextmanager
    def batch(self, db: ReadDB) -> Iterator[None]:
        """Around many `apply`s in one transaction (a Kafka poll's, a feeder's batch): what
        the read model held back is written at the end (`flush`), before the caller's
        positions; if the block raises, it is forgotten (its transaction is undone anyway).
        Applied one by one, outside a batch, every write is made at its own event. A batch
        inside a batch is part of the outer one."""
        if self.holding:
            yield
            return
        self.holding = True
        try:
            yield
            self.flush(db)
        finally:
            self.holding = False
            self.forget()

    def flush(self, db: ReadDB) -> None:
        """Write what `apply` held back: each of the read model's `LastValues`."""
        for last in self._last_values():
            last.flush(db)

    def forget(self) -> None:
        """Drop what `apply` held back: its batch failed."""
        for last in self._last_values():
            last.forget()

    def _last_values(self) -> list[LastValues]:
        return [value for value in vars(self).values() if isinstance(value, LastValues)]

    def apply(self, db: ReadDB, record: EventRecord) -> None:
        """Dispatch to `on_<Aggregate>_<Event>`; an event without a handler changes nothing."""
        handler = getattr(self, handler_name(record.name), None)
        if handler is not None:
            handler(db, record)

    @classmethod
    def handled_events(cls) -> dict[str, str]:
        """Each handler's event name (`Subscription.Renewed`), by method name.

        A misspelt handler would silently never run: tests check these names are events.
        """
        return {
            name: name.removeprefix(HANDLER_PREFIX).replace("_", ".", 1)
            for name in dir(cls)
            if name.startswith(HANDLER_PREFIX) and callable(getattr(cls, name))
        }


class KeptRows:
    """Rows a read model keeps in memory between events, each as it stands after one event
    of its aggregate (by version), so the next event need not read it back.

    A row is only handed out as of the version asked for: the event just before (its
    version one less) or the same one. Whoever applied that event, in whatever process or
    read DB, left the same row, as it follows from the same events; a row whose writes
    were rolled back is read again, as the next event applied is then not its successor.
    Bounded: when full, everything is forgotten (and read again when needed).
    """

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self.rows: dict[str, tuple[int, dict[str, Any]]] = {}

    def at(self, aggregate_id: str, version: int) -> dict[str, Any] | None:
        """The row as it stands after the aggregate's event `version`, if kept."""
        kept = self.rows.get(aggregate_id)
        return kept[1] if kept is not None and kept[0] == version else None

    def keep(self, aggregate_id: str, version: int, row: dict[str, Any]) -> None:
        if len(self.rows) >= self.limit:
            self.rows.clear()
        self.rows[aggregate_id] = (version, row)

    def carry(self, r: EventRecord) -> None:
        """`r` left the row as it was: kept as of `r` too (if kept as of the one before)."""
        row = self.at(r.aggregate_id, r.version - 1)
        if row is not None:
            self.keep(r.aggregate_id, r.version, row)

    def clear(self) -> None:
        self.rows.clear()


class LastValues:
    """Rows that each event sets anew (a subscription's status and MRR, say): in a batch,
    only the row's last values are written, many rows a statement at its end, not a
    statement per event (a PostgreSQL UPDATE costs a projection about 13 µs, a row of one
    that sets many about 5). Outside a batch each is written at once.

    `statement` writes many rows: `{rows}` stands where their VALUES go, `width` values
    each; the read model keeps any other statement of a batch from reading what is held.
    """

    ROWS = 200  # rows a statement writes, at most

    def __init__(self, statement: str, width: int) -> None:
        self.statement, self.width = statement, width
        self.held: dict[Any, tuple[Any, ...]] = {}

    def get(self, key: Any) -> tuple[Any, ...] | None:
        """The row `key`'s values held back, if any."""
        return self.held.get(key)

    def set(self, projection: Projection, db: ReadDB, key: Any, row: tuple[Any, ...]) -> None:
        """The row `key`'s new values: written now, or at the end of the projection's batch."""
        self.held[key] = row
        if not projection.holding:
            self.flush(db)

    def flush(self, db: ReadDB) -> None:
        held, self.held = list(self.held.values()), {}
        mark = "(" + ", ".join("?" * self.width) + ")"
        for i in range(0, len(held), self.ROWS):
            chunk = held[i : i + self.ROWS]
            db.execute(
                self.statement.replace("{rows}", ", ".join([mark] * len(chunk))),
                [x for row in chunk for x in row],
            )

    def forget(self) -> None:
        self.held.clear()


HANDLER_PREFIX = "on_"


@cache
def _handled(cls: type[Projection]) -> frozenset[str]:
    return frozenset(cls.handled_events().values())


def handler_name(event_name: str) -> str:
    """`Subscription.Renewed` -> `on_Subscription_Renewed`, the method that applies it."""
    return HANDLER_PREFIX + event_name.replace(".", "_", 1)


def get_positions(db: ReadDB, projection: str) -> dict[str, int]:
    rows = db.query(
        "SELECT source, position FROM projection_positions WHERE projection = ?", (projection,)
    )
    return {row["source"]: int(row["position"]) for row in rows}


def set_position(db: ReadDB, projection: str, source: str, position: int) -> None:
    db.execute(
        "INSERT INTO projection_positions (projection, source, position) VALUES (?, ?, ?)"
        " ON CONFLICT (projection, source) DO UPDATE SET position = excluded.position",
        (projection, source, position),
    )


def record_fault(
    db: ReadDB, projection: str, source: str, position: int, event: str, reason: str, at: str
) -> None:
    """Note that `projection` is stuck at `position` of `source` on `event`, and why.

    A stuck projection applies nothing more from that source until it is rebuilt; the
    ledger and every other projection go on. The caller writes it in the transaction that
    keeps the projection's position just before that event, so both commit or neither does.
    """
    db.execute(
        "INSERT INTO projection_faults (projection, source, position, event, reason,"
        " recorded_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (projection, source) DO UPDATE"
        " SET position = excluded.position, event = excluded.event, reason = excluded.reason,"
        " recorded_at = excluded.recorded_at",
        (projection, source, position, event, reason[:1000], at),
    )


def get_faults(db: ReadDB, projection: str | None = None) -> list[dict[str, Any]]:
    """Stuck (projection, source) pairs with the position, event and reason they stopped at."""
    where, params = ("WHERE projection = ?", (projection,)) if projection else ("", ())
    return db.query(
        "SELECT projection, source, position, event, reason, recorded_at FROM projection_faults"
        f" {where} ORDER BY projection, source",
        params,
    )
