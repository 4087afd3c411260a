"""The read-model database: SQLite (embedded) or PostgreSQL (psycopg2), one small interface.

SQL is written once with `?` placeholders; for PostgreSQL they become `%s`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from adapters.sqlite_files import use_wal

PIPELINE_DEPTH = 500  # writes `pipelined` sends in one round trip, at most
PREPARED_MAX = 256  # statements a PostgreSQL connection prepares, at most (then plain text)
PREPARED_PARAMETERS = 32  # a write of more rows than that is parsed once for all of them
WAL_CHECKPOINT_PAGES = 10_000  # SQLite: the read DB's WAL copied back at this size (pages)
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
            use_wal(self.conn)
            self.conn.execute("PRAGMA synchronous=NORMAL")
            # a savepoint's undo (each read model's part of a batch) kept in memory: else
            # SQLite spills it to a temporary file, written and thrown away every batch
            self.conn.execute("PRAGMA temp_store=MEMORY")
            # the WAL copied back into the file every 10,000 pages (40 MB), not every 1,000:
            # each batch's commit dirties the same hot pages again, and a checkpoint copies
            # each page once however often it was written since the last one
            self.conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            self.conn.create_aggregate("sum", 1, ExactSum)  # never "integer overflow"
        self._in_tx = False
        self._pending: list[bytes] | None = None  # writes not yet sent (`pipelined`)
        self._sender: ThreadPoolExecutor | None = None  # sends them while we go on (PostgreSQL)
        self._in_flight: list[Future[None]] = []  # the sends given to it, in their order
        self._failed = False  # a send of this transaction failed: its commit is a rollback
        # pipelined writes' SQL -> the name it is prepared under ("" if it cannot be); off
        # for good once a pipelined send failed (plain text then, as the one-by-one rerun)
        self._prepared: dict[str, str] = {}
        self._prepare = self.kind == "postgres"
        self._quoting: Any = None  # the cursor that writes held-back statements' text
        self._parts: dict[str, list[bytes]] = {}  # a statement's text between its `?`s
        # whether `_literal` may write a pipelined write's values (else psycopg2 does)
        self._literals = self.kind == "postgres" and literals_apply(self.conn)

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.kind == "postgres" else sql

    @contextmanager
    def transaction(self, defer: bool = False) -> Iterator[ReadDB]:
        """All writes inside commit together, or none do.

        `defer` (PostgreSQL): the writes still held back and the commit are left to the
        sender thread, and this returns at once; whatever uses the connection next waits
        for them first (`settle`), and raises if they failed: then none of the
        transaction's writes were kept.
        """
        if self._in_tx:
            yield self
            return
        self._wait()  # a deferred commit: done first (or its failure raised here)
        self._in_tx, self._failed = True, False
        try:
            if self.kind == "sqlite":
                self.conn.execute("BEGIN IMMEDIATE")
            yield self
            if defer and self.kind == "postgres":
                self._hand_off()
                self._in_flight.append(self._send_later(self._commit_unless_failed))
            else:
                self._wait()
                self.conn.commit() if self.kind == "postgres" else self.conn.execute("COMMIT")
        except BaseException:
            if self.kind == "postgres":
                self._wait(quietly=True)
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
            self._wait(quietly=True)  # what is being sent: undone too, whether it failed or not
            if self._alive():  # SQLite rolls back the whole transaction on some errors
                self._now(f"ROLLBACK TO SAVEPOINT {name}")
                self._now(f"RELEASE SAVEPOINT {name}")
                self._failed = False  # what failed is undone: the transaction may commit
            raise
        self.execute(f"RELEASE SAVEPOINT {name}")

    @contextmanager
    def pipelined(self, on: bool = True, wait: bool = True) -> Iterator[ReadDB]:
        """PostgreSQL, inside a transaction: send the block's writes many to a round trip,
        while the caller goes on.

        Each write waits in order until `PIPELINE_DEPTH` of them are held back: those are
        handed, as one multi-statement text, to a sender thread, which sends them while the
        caller builds the next ones (psycopg2 lets go of the GIL while PostgreSQL works), so
        the database's time and ours overlap instead of adding up. The sends go in order.
        A read, a savepoint, the end of the block (unless not `wait`: then at the end of a
        deferred transaction, or the next use of the connection) and the end of the
        transaction first send what is held back and wait for it: a read sees every write
        before it. A failing write then raises at that wait, not at its own `execute`, so a
        caller that must name the statement that failed runs the block again with
        `on=False`. SQLite (in process: no round trip to save) and a block already
        pipelined change nothing.
        """
        if not on or self.kind != "postgres" or self._pending is not None:
            yield self
            return
        assert self._in_tx, "pipelined writes are sent within a transaction"
        self._pending = []
        try:
            yield self
            self._send() if wait else self._hand_off()
        except BaseException:
            self._wait(quietly=True)  # nothing left in flight behind a failure
            raise
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
        """Send the writes `pipelined` holds back, in order, and wait until all are done."""
        self._hand_off()
        self._wait()

    def _hand_off(self) -> None:
        """Give the held-back writes to the sender, after those given before them."""
        if not self._pending:
            return
        statements, self._pending[:] = b";\n".join(self._pending), []
        self._in_flight.append(self._send_later(self._run, statements))

    def _send_later(self, work: Any, *args: Any) -> Future[None]:
        """`work(*args)` on the sender thread, after what it was given before (one thread:
        in order)."""
        if self._sender is None:
            self._sender = ThreadPoolExecutor(1, thread_name_prefix="readdb-send")
        return self._sender.submit(work, *args)

    def _commit_unless_failed(self) -> None:
        """A deferred commit, on the sender thread: a rollback if a send before it failed
        (whose failure `_wait` raises: the first one, in order)."""
        self.conn.rollback() if self._failed else self.conn.commit()

    def settle(self) -> None:
        """Wait for whatever was left to the sender (a deferred commit, say); raise its
        first failure."""
        self._wait()

    def _run(self, statements: bytes) -> None:
        cur = self.conn.cursor()
        try:
            self._execute_held(cur, statements)
        finally:
            cur.close()

    def _execute_held(self, cur: Any, statements: bytes) -> None:
        try:
            cur.execute(statements)
        except BaseException:
            self._prepare = False  # whatever failed, the rerun sends plain text
            self._failed = True  # (on the sender: what it sends next fails too, till rollback)
            raise

    def _held(self, cur: Any, sql: str, params: tuple) -> bytes:
        """A pipelined write's text: the EXECUTE of its prepared statement (PostgreSQL then
        parses and plans it once per connection, not once per event: a third of the time
        of a projection's small UPDATE), or the statement itself (one of many rows). The
        values are written by `_literal`, or by psycopg2 if it writes no such value."""
        name = self._prepared.get(sql) if self._prepare else ""
        if len(params) > PREPARED_PARAMETERS:
            name = ""  # many rows in one statement (of as many shapes as there are sizes)
        if name is None:
            name = self._prepared[sql] = self._prepared_name(sql)
        if name and not params:
            return f"EXECUTE {name}".encode()
        literals = [_literal(value) for value in params] if self._literals else [None]
        if None in literals:  # a value `_literal` does not write: psycopg2 does
            if name:
                return cur.mogrify(f"EXECUTE {name}({', '.join(['%s'] * len(params))})", params)
            return cur.mogrify(self._sql(sql), params)
        if name:
            return b"EXECUTE %s(%s)" % (name.encode(), b", ".join(literals))  # type: ignore[arg-type]
        parts = self._parts.get(sql)  # the text around each `?`
        if parts is None:
            if len(self._parts) >= PREPARED_MAX:
                self._parts.clear()
            parts = self._parts[sql] = [part.encode() for part in sql.split("?")]
        text = [parts[0]]
        for literal, part in zip(literals, parts[1:], strict=True):
            text += (literal, part)
        return b"".join(text)

    def _prepared_name(self, sql: str) -> str:
        """PREPARE `sql` on this connection now; its name, or "" if it cannot be (a
        parameter whose type PostgreSQL cannot infer, say: that write is then sent as is).
        A prepared statement outlives the transaction; a failed PREPARE only undoes its
        own savepoint."""
        if len(self._prepared) >= PREPARED_MAX:
            return ""
        name = f"subledger_{len(self._prepared)}"
        parts = sql.split("?")
        text = "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], 1)) + parts[-1]
        self._wait()  # the connection is the sender's until then
        cur = self.conn.cursor()
        try:
            cur.execute(
                "SAVEPOINT subledger_prepare;"
                f" PREPARE {name} AS {text}; RELEASE SAVEPOINT subledger_prepare"
            )
        except Exception as exc:
            if self.is_transient(exc):
                raise
            cur.execute("ROLLBACK TO SAVEPOINT subledger_prepare")
            cur.execute("RELEASE SAVEPOINT subledger_prepare")
            return ""
        finally:
            cur.close()
        return name

    def _wait(self, quietly: bool = False) -> None:
        """Until every send given to the sender is done; the first failure raised (or,
        `quietly`, dropped: the caller is failing already, and rolls back what was sent)."""
        in_flight, self._in_flight = self._in_flight, []
        failures = [exc for exc in (f.exception() for f in in_flight) if exc is not None]
        if failures and not quietly:
            raise failures[0]

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
        if self._pending is not None:
            if self._quoting is None:  # a cursor of its own that only quotes: never executes
                self._quoting = self.conn.cursor()
            self._pending.append(self._held(self._quoting, sql, tuple(params)))
            if len(self._pending) >= PIPELINE_DEPTH:
                self._hand_off()
            return -1
        self._wait()  # the connection is the sender's until then
        cur = self.conn.cursor()
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
        self._wait()
        cur = self.conn.cursor()
        cur.executemany(self._sql(sql), [tuple(r) for r in rows])
        cur.close()
        self._autocommit()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        self._wait()  # it reads what was written before it: what is in flight, then
        cur = self.conn.cursor()
        if self._pending:  # what is held back, sent with it in one round trip
            statements = [*self._pending, cur.mogrify(self._sql(sql), tuple(params))]
            self._pending[:] = []
            self._execute_held(cur, b";\n".join(statements))  # rows: the last statement's
        else:
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
        self._wait(quietly=True)
        if self._sender is not None:
            self._sender.shutdown()
            self._sender = None
        self.conn.close()


def literals_apply(conn: Any) -> bool:
    """Whether `_literal`'s text means on this PostgreSQL connection what psycopg2's would:
    strings in which only a quote is special (standard_conforming_strings, the default since
    9.1) sent as UTF-8."""
    return conn.encoding == "UTF8" and (
        conn.get_parameter_status("standard_conforming_strings") == "on"
    )


def _literal(value: Any) -> bytes | None:
    """A value of the kinds projections write (text, integers, NULL, booleans) as the SQL
    literal psycopg2's `mogrify` makes of it, at a third of its cost (a sixth of a
    projection's time went to `mogrify`); None for any other kind, or a string PostgreSQL
    cannot hold (a NUL): psycopg2 then writes, or refuses, the statement as it always did."""
    kind = type(value)
    if kind is str:
        if "\x00" in value:
            return None
        return b"'" + value.replace("'", "''").encode() + b"'"
    if kind is int:
        return b"%d" % value if value >= 0 else b" %d" % value  # " -5": never "--", a comment
    if value is None:
        return b"NULL"
    if kind is bool:
        return b"true" if value else b"false"
    return None


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
