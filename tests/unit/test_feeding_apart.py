"""Recording while a process of its own feeds the read models (`Runtime.feeding_apart`,
what `simulate` and `demo` do): the same book, due work found meanwhile, nothing left
running after the block or after the recording process is killed."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

from ledger_support import Book, T, dump_tables

from bootstrap import Config, Runtime
from domain import commands as c
from projections import reports
from verbs.app import App
from verbs.simulation import run_simulation

ROOT = Path(__file__).resolve().parents[2]


def app_on(data_dir: Path) -> App:
    app = App(str(data_dir))
    app.config = Config(data_dir=data_dir)  # embedded, whatever the environment says
    return app


def simulated_book(data_dir: Path) -> dict[str, list[tuple]]:
    app = app_on(data_dir)
    try:
        counts = run_simulation(app, customers=40, months=4, seed=3, quiet=True)
        assert counts["commands"] > 100 and counts["rejected"] < counts["commands"] // 10
        db = app.runtime.db
        tables = db.query("SELECT name FROM sqlite_master WHERE type = 'table'")
        return dump_tables(db, [t["name"] for t in tables])  # every read model, every row
    finally:
        app.close()


def record(book: Book, cls: type[c.Command], at, **fields) -> dict:
    """The command recorded, and no catch-up of the read models in this process."""
    command = cls(at=at, command_id=book.next_id(), actor="tester", source="pytest", **fields)
    return book.ledger.execute(command)


def test_a_simulation_fed_apart_makes_the_same_book_as_one_fed_in_process(
    tmp_path: Path, monkeypatch
) -> None:
    apart = simulated_book(tmp_path / "apart")

    @contextmanager
    def in_process(self):  # the path Kafka mode takes: caught up here after each day
        yield False

    monkeypatch.setattr(Runtime, "feeding_apart", in_process)
    here = simulated_book(tmp_path / "here")
    assert len(here["invoices"]) > 40 and len(here["notifications"]) > 100
    assert apart == here


def test_a_process_of_its_own_feeds_the_read_models_while_the_block_records(
    tmp_path: Path,
) -> None:
    book = Book.embedded(tmp_path)
    book.plan("basic", T(2025, 1, 1))
    book.customer("ada", T(2025, 1, 1))
    shared = book.ledger.schedule

    with book.rt.feeding_apart() as apart:
        assert apart and book.ledger.schedule is not shared
        sub = {"subscription_id": "s1", "customer_id": "ada", "plan_id": "basic"}
        record(book, c.Subscribe, T(2025, 1, 2), **sub)
        # due work found by the private billing model: two renewals, each charged and paid
        assert record(book, c.AdvanceClock, T(2025, 3, 5))["renewals"] == 2
        head = book.head()
        deadline = time.monotonic() + 30
        while set(book.rt.feeder.positions().values()) != {head}:
            assert time.monotonic() < deadline, book.rt.feeder.positions()
            time.sleep(0.05)
    assert book.ledger.schedule is shared
    assert multiprocessing.active_children() == []  # ended with the block
    invoices = reports.invoices(book.rt.db)  # read without any catch-up of this process
    assert [(i["total"], i["status"]) for i in invoices] == [(1000, "paid")] * 3
    book.close()


def test_an_error_in_the_block_ends_the_feeding_process_at_once(tmp_path: Path) -> None:
    """Not after it caught up: here it waits on the read DB's write lock, held by another
    connection (up to 30 s), and is ended at once; its batch rolls back whole."""
    book = Book.embedded(tmp_path)
    shared = book.ledger.schedule
    blocker = sqlite3.connect(tmp_path / "read.sqlite", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    began = time.monotonic()
    try:
        with book.rt.feeding_apart():
            record(book, c.AdvanceClock, T(2025, 1, 1))  # an event for it to feed
            time.sleep(3)  # the feeding process is up, and waiting for the lock
            raise KeyError("the block failed")
    except KeyError:
        pass
    assert time.monotonic() - began < 15
    assert multiprocessing.active_children() == [] and book.ledger.schedule is shared
    blocker.execute("ROLLBACK")
    blocker.close()
    assert set(book.rt.feeder.positions().values()) == {0}  # nothing of its batch kept
    assert book.rt.catch_up() == book.head()
    book.close()


def test_the_feeding_process_ends_when_the_recording_process_is_killed(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from bootstrap import Config, Runtime
        runtime = Runtime(Config(data_dir=Path({str(tmp_path)!r})))
        with runtime.feeding_apart():
            print("recording", flush=True)
            time.sleep(600)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "recording"
        feeders = [pid for pid in children(proc.pid) if "spawn_main" in cmdline(pid)]
        assert len(feeders) == 1, [cmdline(pid) for pid in children(proc.pid)]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10
        while alive(feeders[0]):
            assert time.monotonic() < deadline, "the feeding process outlived its parent"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait(10)


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def alive(pid: int) -> bool:
    """Running, not gone nor a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
