"""psycopg2 connections to the event-store database, for what eventsourcing does not keep.

eventsourcing talks to PostgreSQL through psycopg 3 on connections of its own, which
psycopg2 cannot share a transaction with: the setup lock, the relay's position and the
customer keys live on separate psycopg2 connections.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SETUP_LOCK = 0x5B1ED5E7  # advisory lock id: "subledger setup"
RELAY_LOCK = 0x5B1ED6E7  # advisory lock id: "subledger relay"
RELAY_POSITION_DDL = (
    "CREATE TABLE IF NOT EXISTS subledger_relay_position ("
    " topic TEXT PRIMARY KEY, notification_id BIGINT NOT NULL)"
)


def connect(url: str) -> Any:
    """An autocommit connection: each statement stands alone, locks live with the session."""
    import psycopg2  # here, so the embedded default never loads it

    conn = psycopg2.connect(url)
    conn.autocommit = True
    return conn


def execute(url: str, *statements: str) -> None:
    """Run `statements` on a connection of their own (table creation before workers start)."""
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


@contextmanager
def setup_lock(url: str | None) -> Iterator[None]:
    """Serialise table creation across processes (a no-op without PostgreSQL).

    Concurrent CREATE ... IF NOT EXISTS and eventsourcing's CREATE OR REPLACE FUNCTION race
    in PostgreSQL ("tuple concurrently updated") when several workers or CLI calls start.
    """
    if url is None:
        yield
        return
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (SETUP_LOCK,))
        yield
    finally:
        conn.close()  # releases the lock


class RelayPosition:
    """The last notification id the relay published to a topic, on its own connection.

    The same connection holds the relay's advisory lock, so it goes when the relay dies.
    """

    def __init__(self, url: str, topic: str) -> None:
        self.topic = topic
        self.conn = connect(url)
        with self.conn.cursor() as cur:
            cur.execute(RELAY_POSITION_DDL)

    def get(self) -> int:
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT notification_id FROM subledger_relay_position WHERE topic = %s",
                (self.topic,),
            )
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def set(self, notification_id: int) -> None:
        with self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO subledger_relay_position (topic, notification_id) VALUES (%s, %s)"
                " ON CONFLICT (topic) DO UPDATE SET notification_id = excluded.notification_id",
                (self.topic, notification_id),
            )

    def try_lock(self) -> bool:
        """Become the one relay publishing, unless another session already is."""
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (RELAY_LOCK,))
            return bool(cur.fetchone()[0])

    def close(self) -> None:
        self.conn.close()
