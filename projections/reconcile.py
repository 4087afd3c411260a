"""Reconcile: the read models rebuilt from the event store, compared row by row with the live.

The event store is the source of truth and a read model must equal its rebuild. This
rebuilds each projection into a scratch database of the same kind (SQLite: a temporary
file; PostgreSQL: a scratch schema of the read DB, dropped afterwards), fed by the same
`LogFeeder` over the same projection classes, up to the position the live model has
reached, and compares every table the projection declares (`Projection.tables`): by
primary key where the DDL names one, else as sorted multisets of rows.

Bookkeeping tables are not read models and are left out: `projection_positions`,
`projection_faults` (a live fault is reported as a difference of its own) and the Kafka
projectors' `projection_versions`. No column is left out: every column of every table
comes from the events alone, including those that look like wall-clock facts —
`notifications.sent_at`/`attempts`/`lease_until` come from the Delivery events the
dispatcher records, `webhook_deliveries.sent_at`/`last_attempt_at` from the
WebhookDelivery.Attempted events, `credit_movements.position` is the notification id in
both modes (the relay's header on Kafka). A column that differs is therefore a finding.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from consumers.embedded import SOURCE, LogFeeder, stuck_at
from domain.pci import mask_card_numbers
from projections.base import Projection
from projections.db import ReadDB

CHANGED, MISSING, EXTRA, STUCK = "changed", "missing", "extra", "stuck"
COLUMNS = ("difference", "projection", "table", "key", "column", "live", "rebuilt")
WHOLE_ROW = "*"  # the `column` of a missing or extra row


@dataclass(frozen=True)
class Difference:
    """One way a live read model is not what the event store says it should be.

    `missing`: the rebuild has the row and the live model does not; `extra`: the reverse;
    `changed`: the row is in both and `column` differs; `stuck`: a projection stopped.
    """

    difference: str
    projection: str
    table: str
    key: str
    column: str
    live: Any
    rebuilt: Any

    def row(self) -> dict[str, Any]:
        return {k: _safe(v) for k, v in asdict(self).items()}


@dataclass
class Report:
    """What a reconcile compared, and every difference it found."""

    differences: list[Difference] = field(default_factory=list)
    tables: int = 0
    rows: int = 0  # live rows compared

    @property
    def identical(self) -> bool:
        return not self.differences


def _safe(value: Any) -> Any:
    """A read model holds no card number, but a value shown is masked all the same."""
    return mask_card_numbers(value) if isinstance(value, str) else value


# ---- the tables' keys ----------------------------------------------------------------------

_TABLE_KEY = re.compile(r"PRIMARY\s+KEY\s*\(([^)]*)\)", re.IGNORECASE)
_COLUMN_KEY = re.compile(r"[(,]\s*(\w+)\s+\w+\s+PRIMARY\s+KEY", re.IGNORECASE)


def primary_key(ddl: str) -> tuple[str, ...]:
    """The primary key's columns as the CREATE TABLE names them; () if it has none."""
    found = _TABLE_KEY.search(ddl)
    if found:
        return tuple(c.strip() for c in found.group(1).split(","))
    column = _COLUMN_KEY.search(ddl)
    return (column.group(1),) if column else ()


# ---- the scratch database --------------------------------------------------------------------


@contextmanager
def scratch_db(live: ReadDB) -> Iterator[ReadDB]:
    """A fresh, empty read DB of the live one's kind, gone when the block ends."""
    if live.kind == "sqlite":
        where = Path(tempfile.mkdtemp(prefix="subledger-reconcile-"))
        db = ReadDB(f"sqlite:///{where / 'rebuilt.sqlite'}")
        try:
            yield db
        finally:
            db.close()
            shutil.rmtree(where, ignore_errors=True)
        return
    schema = f"subledger_reconcile_{uuid.uuid4().hex[:12]}"
    live.execute(f"CREATE SCHEMA {schema}")
    try:
        db = ReadDB(_with_search_path(live.url, schema))
        try:
            yield db
        finally:
            db.close()
    finally:
        live.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _with_search_path(url: str, schema: str) -> str:
    """`url` whose sessions see `schema` only (libpq's `options`, kept if already set)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query["options"] = f"{query.get('options', '')} -csearch_path={schema}".strip()
    return urlunsplit(parts._replace(query=urlencode(query)))


# ---- the live side, read in one snapshot -----------------------------------------------------


@contextmanager
def _snapshot(db: ReadDB) -> Iterator[Any]:
    """A cursor that sees one consistent state of the live DB, blocking no writer."""
    if db.kind == "postgres":
        db.conn.commit()  # whatever was open ends; the next statement begins the snapshot
        cur = db.conn.cursor()
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        try:
            yield cur
        finally:
            cur.close()
            db.conn.rollback()
        return
    cur = db.conn.cursor()
    cur.execute("BEGIN")  # deferred: WAL gives this reader its snapshot at the first read
    try:
        yield cur
    finally:
        cur.execute("ROLLBACK")
        cur.close()


def _rows(cur: Any, table: str) -> list[dict[str, Any]]:
    cur.execute(f"SELECT * FROM {table}")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _tables(projection: Projection) -> dict[str, str]:
    return dict(projection.tables)


def _live(db: ReadDB, projections: Sequence[Projection]) -> dict[str, Any]:
    """Every table of `projections`, their log positions and faults, as of one instant."""
    with _snapshot(db) as cur:
        positions = {
            row["projection"]: int(row["position"])
            for row in _rows(cur, "projection_positions")  # Projection.create made it
            if row["source"] == SOURCE
        }
        faults = _rows(cur, "projection_faults")
        tables = {t: _rows(cur, t) for p in projections for t in _tables(p)}
    return {"positions": positions, "faults": faults, "tables": tables}


# ---- the rebuilt side --------------------------------------------------------------------


class _StoreUpTo:
    """The event store as it stood at notification `head`: what the live model has seen."""

    def __init__(self, ledger: Any, head: int) -> None:
        self.mapper = ledger.mapper
        self.recorder = _RecorderUpTo(ledger.recorder, head)


class _RecorderUpTo:
    def __init__(self, recorder: Any, head: int) -> None:
        self._recorder = recorder
        self._head = head

    def max_notification_id(self) -> int:
        return min(self._recorder.max_notification_id() or 0, self._head)

    def select_notifications(self, start: Any, limit: int, **kwargs: Any) -> Sequence[Any]:
        kwargs["stop"] = self._head  # inclusive: nothing past what the live model saw
        return self._recorder.select_notifications(start, limit, **kwargs)


def rebuild(ledger: Any, db: ReadDB, projection: Projection, head: int) -> dict[str, Any] | None:
    """Feed `projection` into the empty `db` from the store up to `head`; its fault or None."""
    projection.create(db)
    feeder = LogFeeder(_StoreUpTo(ledger, head), db, [projection])
    feeder.catch_up()
    return feeder.faults().get(projection.name)


# ---- the comparison ------------------------------------------------------------------------


def _key_text(columns: Sequence[str], values: Sequence[Any]) -> str:
    return ", ".join(f"{c}={v}" for c, v in zip(columns, values, strict=True))


def _row_text(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, default=str)


def compare_table(
    projection: str,
    table: str,
    key: Sequence[str],
    live: list[dict[str, Any]],
    rebuilt: list[dict[str, Any]],
) -> list[Difference]:
    """Row by row: by `key` if it has one, else as multisets of whole rows."""
    out: list[Difference] = []

    def diff(kind: str, where: str, column: str, a: Any, b: Any) -> None:
        out.append(Difference(kind, projection, table, where, column, a, b))

    if not key:
        have = Counter(_row_text(r) for r in live)
        want = Counter(_row_text(r) for r in rebuilt)
        for text in sorted((want - have).elements()):
            diff(MISSING, text, WHOLE_ROW, None, text)
        for text in sorted((have - want).elements()):
            diff(EXTRA, text, WHOLE_ROW, text, None)
        return out
    by_key = {tuple(r[c] for c in key): r for r in live}
    wanted = {tuple(r[c] for c in key): r for r in rebuilt}
    for k in sorted(wanted.keys() | by_key.keys(), key=repr):
        where = _key_text(key, k)
        a, b = by_key.get(k), wanted.get(k)
        if a is None:
            diff(MISSING, where, WHOLE_ROW, None, _row_text(b or {}))
        elif b is None:
            diff(EXTRA, where, WHOLE_ROW, _row_text(a), None)
        else:
            for column in [*b, *(c for c in a if c not in b)]:
                if a.get(column) != b.get(column):
                    diff(CHANGED, where, column, a.get(column), b.get(column))
    return out


def reconcile(
    ledger: Any, db: ReadDB, projections: Sequence[Projection], head: int | None = None
) -> Report:
    """Rebuild `projections` into scratch tables and compare them with the live ones in `db`.

    Embedded, each projection is rebuilt up to its own live position (read in the same
    snapshot as its rows), so a write landing meanwhile makes no false difference. With
    Kafka projectors (`head` given: the store's head they have all caught up with) every
    projection is rebuilt up to `head`.
    """
    report = Report()
    live = _live(db, projections)
    names = {p.name for p in projections}
    report.differences += [stuck(f) for f in live["faults"] if f["projection"] in names]
    with scratch_db(db) as scratch:
        for projection in projections:
            upto = head if head is not None else live["positions"].get(projection.name, 0)
            fault = rebuild(ledger, scratch, projection, upto)
            if fault is not None:
                what = f"rebuild {stuck_at(fault)}"
                report.differences.append(
                    Difference(STUCK, projection.name, "", "rebuild", "", "", what)
                )
            for table, ddl in _tables(projection).items():
                rows = live["tables"][table]
                report.tables += 1
                report.rows += len(rows)
                with _snapshot(scratch) as cur:
                    rebuilt = _rows(cur, table)
                report.differences += compare_table(
                    projection.name, table, primary_key(ddl), rows, rebuilt
                )
    return report


def stuck(fault: dict[str, Any]) -> Difference:
    """A projection stopped on an event (`projection_faults`): its rows stop there too."""
    where = fault["source"]
    return Difference(STUCK, fault["projection"], "", where, "", stuck_at(fault), "")


def summary(report: Report) -> str:
    """One line: identical, or how many differences and where."""
    if report.identical:
        return f"{report.tables} tables, {report.rows} rows: identical"
    where = sorted(
        {f"{d.projection}.{d.table}" if d.table else d.projection for d in report.differences}
    )
    n = len(report.differences)
    return (
        f"{n} difference{'s' if n != 1 else ''} between the read models and their rebuild"
        f" from the event store ({', '.join(where)}); rebuild those read models with"
        " 'subledger projections rebuild NAME' once the cause is understood"
    )
