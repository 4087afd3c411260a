"""Where customers' encryption keys live: apart from the events, so erasure can destroy them.

Both implement the domain's KeyStore port; bootstrap.py picks SQLite for the
embedded default and, beside a PostgreSQL event store, a PostgreSQL database of their own.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from adapters.postgres import SettingError, connect
from adapters.sqlite_files import use_wal


class SQLiteKeyStore:
    """Keys in their own SQLite file, beside (never inside) the event store."""

    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        use_wal(self._db)
        self._db.execute("PRAGMA secure_delete=ON")  # a shredded key is overwritten
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS customer_keys ("
            "customer_id TEXT PRIMARY KEY, key TEXT NOT NULL)"
        )

    def get(self, customer_id: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT key FROM customer_keys WHERE customer_id = ?", (customer_id,)
            ).fetchone()
        return row[0] if row else None

    def put_new(self, customer_id: str, key: str) -> str:
        """Store `key` unless the customer already has one; return the key in force."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO customer_keys (customer_id, key) VALUES (?, ?)",
                (customer_id, key),
            )
            row = self._db.execute(
                "SELECT key FROM customer_keys WHERE customer_id = ?", (customer_id,)
            ).fetchone()
        return row[0]

    def delete(self, customer_id: str) -> bool:
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM customer_keys WHERE customer_id = ?", (customer_id,)
            )
            # the write-ahead log still holds the key until checkpointed and truncated
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return cur.rowcount > 0

    def close(self) -> None:
        self._db.close()


KEYS_DDL = (
    "CREATE TABLE IF NOT EXISTS subledger_customer_keys ("
    "customer_id TEXT PRIMARY KEY, key TEXT NOT NULL)"
)


def default_key_store_url(event_store: str) -> str:
    """The event store's server and credentials, another database: its name with a trailing
    `_events` replaced by `_keys` (`subledger_events` -> `subledger_keys`), else with `_keys`
    added."""
    parts = urlsplit(event_store)
    name = unquote(parts.path.lstrip("/")) or "postgres"
    base = name[: -len("_events")] if name.endswith("_events") else name
    return parts._replace(path="/" + quote(f"{base}_keys")).geturl()


def _database(url: str) -> tuple[str | None, str | None, str]:
    parts = urlsplit(url)
    return parts.hostname, str(parts.port or 5432), unquote(parts.path.lstrip("/"))


def _connect_or_create(url: str) -> Any:
    """A connection to the key database, created first when missing and the role may."""
    import psycopg2
    from psycopg2 import sql

    try:
        return connect(url, "SUBLEDGER_KEY_STORE")
    except psycopg2.OperationalError as exc:
        name = _database(url)[2]
        if f'"{name}" does not exist' not in str(exc):
            raise
    maintenance = connect(urlsplit(url)._replace(path="/postgres").geturl(), "SUBLEDGER_KEY_STORE")
    try:
        with maintenance.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg2.errors.DuplicateDatabase:
        pass  # another process created it first
    except psycopg2.errors.InsufficientPrivilege:
        raise SettingError(
            f"the key store database '{name}' does not exist and this role may not create it:"
            " create it (ops/services does) or set SUBLEDGER_KEY_STORE"
        ) from None
    finally:
        maintenance.close()
    return connect(url, "SUBLEDGER_KEY_STORE")


class PostgresKeyStore:
    """Customer keys in a database of their own (SUBLEDGER_KEY_STORE), never in the events:
    a backup of the event store holds no key, so a restored one cannot undo an erasure.

    Keys an older version kept in the event-store database (table subledger_customer_keys)
    move here when the store opens; that table is then emptied and rewritten on disk.
    """

    def __init__(self, url: str, *, event_store: str | None = None) -> None:
        if event_store is not None and _database(url) == _database(event_store):
            raise SettingError(
                "SUBLEDGER_KEY_STORE names the event store's own database; keys must live"
                " apart from the events (default: the database <name>_keys)"
            )
        self._lock = threading.Lock()
        self._conn = _connect_or_create(url)
        with self._conn.cursor() as cur:
            cur.execute(KEYS_DDL)
        self._old: str | None = None
        if event_store is not None:
            self._move_old_keys(event_store)

    def _move_old_keys(self, event_store: str) -> None:
        """Copy the event-store database's keys here, then empty its table (a crash between
        the two copies again next time; a key erased meanwhile is deleted in both places)."""
        old = connect(event_store)
        try:
            with old.cursor() as cur:
                cur.execute("SELECT to_regclass('subledger_customer_keys') IS NOT NULL")
                if not cur.fetchone()[0]:
                    return
                self._old = event_store
                cur.execute("SELECT customer_id, key FROM subledger_customer_keys")
                rows = cur.fetchall()
                if not rows:
                    return
            with self._conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO subledger_customer_keys (customer_id, key) VALUES (%s, %s)"
                    " ON CONFLICT (customer_id) DO NOTHING",
                    rows,
                )
            with old.cursor() as cur:
                cur.execute("DELETE FROM subledger_customer_keys")
                # the deleted rows stay in the table's pages until rewritten
                cur.execute("VACUUM FULL subledger_customer_keys")
        finally:
            old.close()

    def get(self, customer_id: str) -> str | None:
        with self._lock, self._conn.cursor() as cur:
            cur.execute(
                "SELECT key FROM subledger_customer_keys WHERE customer_id = %s", (customer_id,)
            )
            row = cur.fetchone()
        return row[0] if row else None

    def put_new(self, customer_id: str, key: str) -> str:
        """Store `key` unless the customer already has one; return the key in force."""
        with self._lock, self._conn.cursor() as cur:
            cur.execute(
                "INSERT INTO subledger_customer_keys (customer_id, key) VALUES (%s, %s)"
                " ON CONFLICT (customer_id) DO NOTHING",
                (customer_id, key),
            )
            cur.execute(
                "SELECT key FROM subledger_customer_keys WHERE customer_id = %s", (customer_id,)
            )
            return cur.fetchone()[0]

    def delete(self, customer_id: str) -> bool:
        with self._lock, self._conn.cursor() as cur:
            cur.execute(
                "DELETE FROM subledger_customer_keys WHERE customer_id = %s", (customer_id,)
            )
            deleted = cur.rowcount > 0
        if self._old is not None:  # never to come back from an unfinished move
            old = connect(self._old)
            try:
                with old.cursor() as cur:
                    cur.execute(
                        "DELETE FROM subledger_customer_keys WHERE customer_id = %s",
                        (customer_id,),
                    )
                    deleted = deleted or cur.rowcount > 0
            finally:
                old.close()
        return deleted

    def close(self) -> None:
        self._conn.close()
