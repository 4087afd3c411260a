"""Our SQLite files opened by several connections at once, as several workers, or the CLI and
the dashboard, open them when they start together; and a read model's batch, which writes no
file but the read DB's own."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.gateway import SandboxGateway
from adapters.keystores import SQLiteKeyStore
from adapters.secrets import SecretStore
from projections.db import WAL_CHECKPOINT_PAGES, ReadDB

OPENERS: dict[str, tuple[Callable[[str], Any], Callable[[Any], None]]] = {
    "read DB": (lambda path: ReadDB(f"sqlite:///{path}"), lambda db: db.close()),
    "gateway": (SandboxGateway, lambda gw: gw.close()),
    "key store": (SQLiteKeyStore, lambda keys: keys.close()),
    "webhook secrets": (lambda path: SecretStore(f"sqlite:///{path}"), lambda s: s._db.close()),
}
AT_ONCE = 4
ROUNDS = 40  # a single round lost the race about 1 time in 16 before (CI saw it)


def at_once(action: Callable[[], None]) -> list[Exception]:
    """Run `action` from AT_ONCE threads released together; what they raised."""
    ready = threading.Barrier(AT_ONCE)
    errors: list[Exception] = []

    def run() -> None:
        ready.wait()
        try:
            action()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(AT_ONCE)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.parametrize("kind", OPENERS)
def test_connections_opening_one_new_file_at_once_all_open_it_in_wal_mode(
    tmp_path: Path, kind: str
) -> None:
    """Switching a new file to WAL needs it to itself, and SQLite answered "database is
    locked" at once, busy timeout or not, to the connections that met another switching."""
    make, close = OPENERS[kind]
    for round_ in range(ROUNDS):
        path = str(tmp_path / f"{round_}.sqlite")
        # the race: sqlite3.OperationalError, database is locked
        assert at_once(lambda path=path: close(make(path))) == [], f"round {round_}"
        mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


def test_processes_starting_together_on_a_new_data_dir_all_open_the_book(tmp_path: Path) -> None:
    """The CLI and the dashboard (or two commands) started at once on a new embedded data dir
    all open the book: its files are first opened one process at a time (eventsourcing's
    SQLite store, made by two at once, failed one of them on its first tracking row)."""
    from bootstrap import Config, Runtime

    def start(config: Config) -> None:
        runtime = Runtime(config)
        runtime.ledger.clock_now()  # the event store, opened
        runtime.close()

    for round_ in range(8):
        config = Config(data_dir=tmp_path / f"book-{round_}")
        assert at_once(lambda config=config: start(config)) == [], f"round {round_}"
        events = sqlite3.connect(config.data_dir / "events.sqlite")
        assert events.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def temporary_files() -> list[str]:
    """SQLite's temporary files this process holds open (unlinked at once, so seen only here)."""
    fds = Path("/proc/self/fd")
    return [
        target
        for fd in fds.iterdir()
        if "etilqs" in (target := str(fd.readlink()) if fd.is_symlink() else "")
    ]


def test_a_read_model_batch_keeps_its_savepoint_undo_in_memory(tmp_path: Path) -> None:
    """Each read model's part of a batch is a savepoint; its undo, spilt to a temporary file,
    was written and thrown away every batch: more bytes than the read DB itself."""
    db = ReadDB(f"sqlite:///{tmp_path / 'read.sqlite'}")
    db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    db.executemany("INSERT INTO t VALUES (?, ?)", [(k, "x" * 200) for k in range(2000)])
    with db.transaction(), db.savepoint():
        db.execute("UPDATE t SET v = ?", ("y" * 200,))  # undo of ~0.5 MB: past any spill
        open_now = temporary_files()
    db.close()
    assert open_now == []


def test_the_read_db_copies_its_wal_back_every_10000_pages(tmp_path: Path) -> None:
    """Each batch dirties the same hot pages again; a checkpoint copies a page once however
    often it was written since the last: every 1,000 pages (SQLite's default) cost 7 % of a
    simulation. Past 10,000 it is copied back, so the log does not grow without end."""
    db = ReadDB(f"sqlite:///{tmp_path / 'read.sqlite'}")
    db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")

    def commit_pages(count: int) -> None:  # a page's worth of row each, 100 a commit
        for first in range(0, count, 100):
            with db.transaction():
                db.executemany(
                    "INSERT OR REPLACE INTO t VALUES (?, zeroblob(3500))",
                    [(k,) for k in range(first, first + 100)],
                )

    def frames_in_log() -> int:  # PASSIVE: what the log holds, copied back as it answers
        return db.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]

    commit_pages(3_000)
    assert frames_in_log() > 3_000  # kept past SQLite's 1,000
    commit_pages(WAL_CHECKPOINT_PAGES + 2_000)
    assert frames_in_log() < WAL_CHECKPOINT_PAGES  # copied back on the way
    db.close()
