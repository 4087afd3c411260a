"""Where customers' encryption keys live: apart from the events, so erasure can destroy them.

Both implement the domain's KeyStore port; bootstrap.py picks SQLite for the
embedded default and PostgreSQL beside a PostgreSQL event store.
"""

from __future__ import annotations

import sqlite3
import threading

from adapters.postgres import connect


class SQLiteKeyStore:
    """Keys in their own SQLite file, beside (never inside) the event store."""

    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
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


class PostgresKeyStore:
    """Customer keys in their own table of the event-store database, never in the events."""

    def __init__(self, url: str) -> None:
        self._lock = threading.Lock()
        self._conn = connect(url)
        with self._conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS subledger_customer_keys ("
                "customer_id TEXT PRIMARY KEY, key TEXT NOT NULL)"
            )

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
            return cur.rowcount > 0

    def close(self) -> None:
        self._conn.close()
