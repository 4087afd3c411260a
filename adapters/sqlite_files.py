"""What every SQLite file of ours needs on opening: write-ahead logging, set safely."""

from __future__ import annotations

import fcntl
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

WAL_WAIT_S = 30.0  # as long as a writer waits for another's lock (the connections' timeout)


def use_wal(conn: sqlite3.Connection, wait_s: float = WAL_WAIT_S) -> None:
    """`PRAGMA journal_mode=WAL`, waiting while another connection switches the same file.

    The switch needs the file to itself, and SQLite answers "database is locked" at once,
    without the connection's busy timeout, while another connection opening the same new
    file holds it: two workers, or the CLI and the dashboard, starting together. So it is
    asked again, up to `wait_s`; once the file is in WAL mode the pragma changes nothing.
    """
    deadline = time.monotonic() + wait_s
    delay = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


@contextmanager
def setup_lock(folder: Path) -> Iterator[None]:
    """One process at a time opens a data dir's files for the first time (an flock).

    eventsourcing's SQLite store made by two processes at once fails one of them (both
    record its first tracking row); PostgreSQL's stores take an advisory lock instead.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".setup.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # let go when the file closes
        yield
