"""eventsourcing's process recorders, with the tamper-evidence chain written beside the events.

The chain table (`subledger_chain`: notification_id, originator_id, originator_version,
event_hash, log_hash; domain/chain.py defines the hashes) is written in the transaction that
inserts the events, after the insert, when the notification ids are known: SQLite serialises
writers, and on PostgreSQL eventsourcing holds an EXCLUSIVE lock on the events table by then,
so the log chain's head cannot move under two writers. bootstrap chooses these classes through
eventsourcing's PROCESS_RECORDER_TOPIC; the PostgreSQL one is in adapters/chain_postgres.py,
so that the embedded default never loads psycopg. A store with events but no chain (written
before it existed) gets none until `audit seal` computes it from the first event; a new store
is chained from its first transaction. Stored events are never rewritten.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteProcessRecorder

from domain import chain
from domain.chain import GENESIS, SEAL_POSITION, Link, Row

TABLE = "subledger_chain"
PAGE = 1000
HASHES_PER_QUERY = 500  # (aggregate, version) pairs a query asks for: 1,000 parameters
COLUMNS = "notification_id, originator_id, originator_version, event_hash, log_hash"


class AlreadySealed(Exception):
    """`audit seal` on a store that is chained already."""


def chained(recorder: Any) -> bool:
    """Whether this recorder keeps the chain (the Runtime's do)."""
    return isinstance(recorder, ChainMixin)


def verify_store(recorder: Any, start: int = 1, expect: str | None = None) -> chain.Verdict:
    """Recompute the chain over the stored rows from position `start` against the chain
    table; rows before `start` are taken as their stored hashes say."""
    start = max(start, 1)
    return chain.verify(
        recorder.chain_rows(start),
        recorder.chain_links(start),
        recorder.chain_log_before(start),
        recorder.chain_event_hash,
        expect,
    )


class ChainMixin:
    """What both recorders share; `_q` adapts the SQL's placeholders to the driver."""

    _sealed = False

    def _q(self, sql: str) -> Any:
        return sql

    def _fetch(self, c: Any, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        c.execute(self._q(sql), tuple(params))
        return list(c.fetchall())

    def _write_chain(self, c: Any, stored: Sequence[StoredEvent], ids: Sequence[int]) -> None:
        """Chain rows for the events just inserted (inside their transaction)."""
        if not ids:
            return
        if not self._sealed:
            if self._fetch(c, f"SELECT 1 FROM {TABLE} WHERE notification_id = ?", (0,)):
                self._sealed = True
            else:
                older = self._fetch(c, self._older_events_sql(), (min(ids),))
                if older:  # events from before the chain: `audit seal` starts it
                    return
                self._insert_links(c, [_seal_link("genesis")])
                self._sealed = True
        head = self._fetch(c, f"SELECT log_hash FROM {TABLE} ORDER BY notification_id DESC LIMIT 1")
        previous_log = bytes.fromhex(head[0][0]) if head else GENESIS
        rows = sorted(
            (
                chain.row_of(i, s.originator_id, s.originator_version, s.topic, s.state)
                for i, s in zip(ids, stored, strict=True)
            ),
            key=lambda r: r.position,
        )
        self._insert_links(c, self._linked(c, rows, previous_log))

    def _linked(self, c: Any, rows: Sequence[Row], previous_log: bytes) -> list[Link]:
        """The chain rows for `rows` (in notification order). Each aggregate's event hash
        before its first row here is read in one query for them all, not one per aggregate
        (this runs under the events table's lock); none stored (an event from before the
        seal, or a first event): GENESIS."""
        firsts: dict[str, int] = {}
        for row in rows:
            firsts.setdefault(row.originator_id, row.version)
        stored = self._stored_hashes(c, [(o, v - 1) for o, v in firsts.items() if v > 1])
        return chain.link(
            rows, previous_log, lambda r: stored.get((r.originator_id, r.version - 1), GENESIS)
        )

    def _stored_hashes(
        self, c: Any, wanted: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], bytes]:
        """The stored event hashes of the (aggregate, version) pairs `wanted` that have one."""
        found: dict[tuple[str, int], bytes] = {}
        for i in range(0, len(wanted), HASHES_PER_QUERY):
            chunk = wanted[i : i + HASHES_PER_QUERY]
            params = [value for pair in chunk for value in pair]
            for originator_id, version, event_hash in self._fetch(
                c, self._stored_hashes_sql(len(chunk)), params
            ):
                found[(str(originator_id), int(version))] = bytes.fromhex(event_hash)
        return found

    def _stored_hashes_sql(self, count: int) -> str:
        """`count` (aggregate, version) pairs' hashes, through the chain's index: a join, not
        `(a, b) IN (VALUES ...)`, for which SQLite scans the whole table."""
        pairs = ", ".join(["(?, ?)"] * count)
        return (
            f"SELECT c.originator_id, c.originator_version, c.event_hash"
            f" FROM (VALUES {pairs}) AS w JOIN {TABLE} c"
            " ON c.originator_id = w.column1 AND c.originator_version = w.column2"
        )

    def _insert_links(self, c: Any, links: Sequence[Link]) -> None:
        c.executemany(
            self._q(f"INSERT INTO {TABLE} ({COLUMNS}) VALUES (?, ?, ?, ?, ?)"),
            [(k.position, k.originator_id, k.version, k.event_hash, k.log_hash) for k in links],
        )

    def _older_events_sql(self) -> str:
        raise NotImplementedError

    def _chain_table_sql(self) -> list[str]:
        return [
            f"CREATE TABLE IF NOT EXISTS {TABLE} (notification_id BIGINT PRIMARY KEY,"
            " originator_id TEXT NOT NULL, originator_version BIGINT NOT NULL,"
            " event_hash TEXT NOT NULL, log_hash TEXT NOT NULL)",
            f"CREATE UNIQUE INDEX IF NOT EXISTS {TABLE}_aggregate"
            f" ON {TABLE} (originator_id, originator_version)",
        ]

    # ---- for `audit` ----------------------------------------------------------------------

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    def chain_sealed(self) -> bool:
        return bool(self._read(f"SELECT 1 FROM {TABLE} WHERE notification_id = ?", (0,)))

    def chain_head(self) -> Link | None:
        """The last checkpoint: the log hash of the last chained row."""
        found = self._read(f"SELECT {COLUMNS} FROM {TABLE} ORDER BY notification_id DESC LIMIT 1")
        return _link(found[0]) if found else None

    def chain_links(self, start: int) -> Iterator[Link]:
        """The chain rows from position `start` (the seal row excluded), page by page."""
        after = max(start, 1) - 1
        while True:
            page = self._read(
                f"SELECT {COLUMNS} FROM {TABLE} WHERE notification_id > ?"
                " ORDER BY notification_id LIMIT ?",
                (after, PAGE),
            )
            yield from (_link(r) for r in page)
            if len(page) < PAGE:
                return
            after = page[-1][0]

    def chain_rows(self, start: int) -> Iterator[Row]:
        """The stored events from position `start`, as stored, page by page."""
        after = max(start, 1) - 1
        while True:
            page = self.select_notifications(after, PAGE, inclusive_of_start=False)  # type: ignore[attr-defined]
            yield from (
                chain.row_of(n.id, n.originator_id, n.originator_version, n.topic, n.state)
                for n in page
            )
            if len(page) < PAGE:
                return
            after = page[-1].id

    def chain_log_before(self, position: int) -> bytes:
        found = self._read(
            f"SELECT log_hash FROM {TABLE} WHERE notification_id < ?"
            " ORDER BY notification_id DESC LIMIT 1",
            (position,),
        )
        return bytes.fromhex(found[0][0]) if found else GENESIS

    def chain_event_hash(self, originator_id: str, version: int) -> bytes | None:
        found = self._read(
            f"SELECT event_hash FROM {TABLE} WHERE originator_id = ? AND originator_version = ?",
            (originator_id, version),
        )
        return bytes.fromhex(found[0][0]) if found else None

    def _seal(self, c: Any) -> tuple[int, Link | None]:
        """Chain every stored event from the first, in the caller's write transaction."""
        if self._fetch(c, f"SELECT 1 FROM {TABLE} WHERE notification_id = ?", (0,)):
            raise AlreadySealed
        self._insert_links(c, [_seal_link("sealed")])
        previous_log, count, last = GENESIS, 0, None
        after = 0
        while True:
            page = [
                self._event_row(r) for r in self._fetch(c, self._events_page_sql(), (after, PAGE))
            ]
            links = self._linked(c, page, previous_log)
            self._insert_links(c, links)
            count += len(links)
            if links:
                last = links[-1]
                previous_log = bytes.fromhex(last.log_hash)
            if len(page) < PAGE:
                return count, last
            after = page[-1].position

    def _events_page_sql(self) -> str:
        raise NotImplementedError

    def _event_row(self, r: Any) -> Row:
        return chain.row_of(r[0], r[1], r[2], r[3], r[4])


def _seal_link(kind: str) -> Link:
    return Link(SEAL_POSITION, kind, 0, GENESIS.hex(), GENESIS.hex())


def _link(r: Any) -> Link:
    return Link(int(r[0]), str(r[1]), int(r[2]), str(r[3]), str(r[4]))


class SQLiteChainRecorder(ChainMixin, SQLiteProcessRecorder):
    """SQLite: the chain written in the insert's own transaction (writers are serialised)."""

    def construct_create_table_statements(self) -> list[str]:
        return super().construct_create_table_statements() + self._chain_table_sql()

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        ids = super()._insert_events(c, stored_events, **kwargs)
        self._write_chain(c, stored_events, list(ids or []))
        return ids

    def _older_events_sql(self) -> str:
        return f"SELECT 1 FROM {self.events_table_name} WHERE rowid < ? LIMIT 1"

    def _events_page_sql(self) -> str:
        return (
            "SELECT rowid, originator_id, originator_version, topic, state FROM"
            f" {self.events_table_name} WHERE rowid > ? ORDER BY rowid LIMIT ?"
        )

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.datastore.transaction(commit=False) as c:
            return self._fetch(c, sql, params)

    def _event_row(self, r: Any) -> Row:
        # SQLite stores a UUID as its 32 hex digits: the chain names it by its UUID text
        originator_id = self.convert_originator_id(r[1])
        return chain.row_of(r[0], originator_id, r[2], r[3], r[4])

    def seal(self) -> tuple[int, Link | None]:
        with self.datastore.transaction(commit=True) as c:
            count, last = self._seal(c)
        self._sealed = True
        return count, last
