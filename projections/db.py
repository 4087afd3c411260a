"""The read-model database: SQLite (embedded) or PostgreSQL (psycopg2), one small interface.

SQL is written once with `?` placeholders; for PostgreSQL they become `%s`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any


class ReadDB:
    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith(("postgresql://", "postgres://")):
            import psycopg2

            self.kind = "postgres"
            self.conn = psycopg2.connect(url)
            self.conn.autocommit = False
        else:
            self.kind = "sqlite"
            path = url.removeprefix("sqlite:///").removeprefix("sqlite://")
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA busy_timeout=30000")
        self._in_tx = False

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
            else:
                self.conn.execute("ROLLBACK")
            raise
        finally:
            self._in_tx = False

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cur = self.conn.cursor()
        cur.execute(self._sql(sql), tuple(params))
        count = cur.rowcount
        cur.close()
        self._autocommit()
        return count

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        cur = self.conn.cursor()
        cur.executemany(self._sql(sql), [tuple(r) for r in rows])
        cur.close()
        self._autocommit()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self.conn.cursor()
        cur.execute(self._sql(sql), tuple(params))
        names = [d[0] for d in cur.description] if cur.description else []
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        cur.close()
        self._autocommit()
        return rows

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self.query(sql, params)
        return next(iter(rows[0].values())) if rows else None

    def _autocommit(self) -> None:
        if self.kind == "postgres" and not self._in_tx:
            self.conn.commit()

    def script(self, statements: Sequence[str]) -> None:
        with self.transaction():
            for statement in statements:
                self.execute(statement)

    def close(self) -> None:
        self.conn.close()
