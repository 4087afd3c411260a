"""The read-model database: SQLite (embedded) or PostgreSQL (psycopg2), one small interface.

SQL is written once with `?` placeholders; for PostgreSQL they become `%s`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

PIPELINE_DEPTH = 1000  # writes `pipelined` sends in one round trip, at most
BUSY_TIMEOUT_S = 30  # how long a writer waits for another process's lock before giving up


class ReadDB:
    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith(("postgresql://", "postgres://")):
            import psycopg2

            from adapters.postgres import url_parameters

            url_parameters(url, "SUBLEDGER_READ_DB")  # a typo is named, not passed to libpq
            self.kind = "postgres"
            self.conn = psycopg2.connect(url)  # whole: every parameter (sslmode, ...) applies
            self.conn.autocommit = False
        else:
            self.kind = "sqlite"
            path = url.removeprefix("sqlite:///").removeprefix("sqlite://")
            # the wait for another process's write lock first, then the pragmas that may need it
            self.conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S
            )
            self.conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.create_aggregate("sum", 1, ExactSum)  # never "integer overflow"
        self._in_tx = False
        self._pending: list[bytes] | None = None  # writes not yet sent (`pipelined`)

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.kind == "postgres" else sql

    @contextmanager
    def transaction(self) -> Iterator[ReadDB]:
        """All writes inside commit together, or none do."""
        if self._in_tx:
            yield self
            return
        self._in_tx = True
        try:
            if self.kind == "sqlite":
                self.conn.execute("BEGIN IMMEDIATE")
            yield self
            self.conn.commit() if self.kind == "postgres" else self.conn.execute("COMMIT")
        except BaseException:
            if self.kind == "postgres":
                self.conn.rollback()
            elif self._alive():
                self.conn.execute("ROLLBACK")
            raise
        finally:
            self._in_tx = False

    def serialise(self, name: str) -> None:
        """Make this transaction the only one holding `name` until it ends.

        SQLite needs nothing more: `BEGIN IMMEDIATE` already lets one writer in at a time.
        PostgreSQL's read-committed transactions would both read the same positions and
        apply the same events, so they queue on a transaction-scoped advisory lock.
        """
        assert self._in_tx, "serialise() holds its lock until the transaction ends"
        if self.kind == "postgres":
            self.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (name,))

    @contextmanager
    def savepoint(self, name: str = "subledger_sp") -> Iterator[ReadDB]:
        """Inside a transaction: undo only what the block wrote if it raises."""
        assert self._in_tx, "a savepoint lives inside a transaction"
        self._now(f"SAVEPOINT {name}")  # after any write held back before it
        try:
            yield self
        except BaseException:
            if self._pending is not None:
                self._pending.clear()  # held back since the savepoint: undone anyway
            if self._alive():  # SQLite rolls back the whole transaction on some errors
                self._now(f"ROLLBACK TO SAVEPOINT {name}")
                self._now(f"RELEASE SAVEPOINT {name}")
            raise
        self.execute(f"RELEASE SAVEPOINT {name}")

    @contextmanager
    def pipelined(self, on: bool = True) -> Iterator[ReadDB]:
        """PostgreSQL, inside a transaction: send the block's writes many to a round trip.

        Each write waits in order until the next read, the end of the block or
        `PIPELINE_DEPTH` of them, then all go at once: a read sees every write before it,
        and a projection's batch costs a few round trips instead of one per statement. A
        failing write then raises at that send, not at its own `execute`, so a caller that
        must name the statement that failed runs the block again with `on=False`. SQLite
        (in process: no round trip to save) and a block already pipelined change nothing.
        """
        if not on or self.kind != "postgres" or self._pending is not None:
            yield self
            return
        assert self._in_tx, "pipelined writes are sent within a transaction"
        self._pending = []
        try:
            yield self
            self._send()
        finally:
            self._pending = None

    def _now(self, sql: str) -> None:
        """Run `sql` at once, after sending whatever `pipelined` holds back."""
        self._send()
        pending, self._pending = self._pending, None
        try:
            self.execute(sql)
        finally:
            self._pending = pending

    def _send(self) -> None:
        """Send the writes `pipelined` holds back, in order, in one round trip."""
        if self._pending:
            statements, self._pending[:] = b";\n".join(self._pending), []
            cur = self.conn.cursor()
            cur.execute(statements)
            cur.close()

    def _alive(self) -> bool:
        """Whether the transaction is still open (SQLite ends it itself on a full disk)."""
        return self.kind == "postgres" or self.conn.in_transaction

    def is_transient(self, exc: BaseException) -> bool:
        """Whether `exc` is the database being busy or gone (retry later), not a bad statement.

        A lock timeout or a lost connection says nothing about the events being applied,
        so it must not mark a read model as stuck on them.
        """
        if self.kind == "postgres":
            import psycopg2

            # lock timeouts, deadlocks, serialisation failures, lost connections
            return isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError)
        if not isinstance(exc, sqlite3.OperationalError):
            return False
        message = str(exc).lower()
        return any(word in message for word in ("locked", "busy", "disk", "i/o", "unable to open"))

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the rows it changed (-1 if `pipelined` holds it back)."""
        cur = self.conn.cursor()
        if self._pending is not None:
            self._pending.append(cur.mogrify(self._sql(sql), tuple(params)))
            cur.close()
            if len(self._pending) >= PIPELINE_DEPTH:
                self._send()
            return -1
        cur.execute(self._sql(sql), tuple(params))
        count = cur.rowcount
        cur.close()
        self._autocommit()
        return count

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self._pending is not None:
            for row in rows:
                self.execute(sql, row)
            return
        cur = self.conn.cursor()
        cur.executemany(self._sql(sql), [tuple(r) for r in rows])
        cur.close()
        self._autocommit()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        self._send()  # it reads what was written before it
        cur = self.conn.cursor()
        cur.execute(self._sql(sql), tuple(params))
        names = [d[0] for d in cur.description] if cur.description else []
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        cur.close()
        self._autocommit()
        return rows

    def _autocommit(self) -> None:
        if self.kind == "postgres" and not self._in_tx:
            self.conn.commit()

    def script(self, statements: Sequence[str]) -> None:
        with self.transaction():
            for statement in statements:
                self.execute(statement)

    def close(self) -> None:
        self.conn.close()


class ExactSum:
    """SQLite's SUM, exact at any size: Python integers, not SQLite's 64-bit ones.

    Every stored amount fits a BIGINT, but a report's total over many rows need not; SQLite's
    own SUM then fails with "integer overflow" and the report with it. A total beyond 64 bits
    comes back as text, which the reports turn into a Python int (PostgreSQL's SUM of a BIGINT
    column is NUMERIC, exact already).
    """

    def __init__(self) -> None:
        self.total: int | float | None = None

    def step(self, value: Any) -> None:
        if value is not None:
            self.total = value if self.total is None else self.total + value

    def finalize(self) -> int | float | str | None:
        total = self.total
        if isinstance(total, int) and not -(2**63) <= total < 2**63:
            return str(total)
        return total
