"""kill -9 of the embedded CLI in the middle of a long `clock advance`: nothing lost, nothing
doubled. The run commits in chunks; the rerun of the same command finishes the rest."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bootstrap import Config, Runtime
from domain import commands as c
from projections import reports

SUBLEDGER = str(Path(sys.executable).with_name("subledger"))
AT = datetime(2024, 1, 1, tzinfo=UTC)
SUBSCRIPTIONS = 120  # two years of them: ~20,000 events, killed after 2,000


def make_book(data_dir: Path) -> None:
    commands: list[c.Command] = [
        c.DefinePlan(command_id="plan", at=AT, plan_id="basic", name="Basic", currency="USD",
                     pricing={"model": "flat", "amount": 1000, "tiers": []}),
        c.SetTaxRate(command_id="tax", at=AT, country="GB", rate_ppm=200_000),
    ]  # fmt: skip
    for i in range(SUBSCRIPTIONS):
        token = "tok_chargeDeclined" if i % 10 == 0 else "tok_visa"
        commands += [
            c.RegisterCustomer(command_id=f"reg-{i}", at=AT, customer_id=f"cus-{i}", name="C",
                               email=f"c{i}@example.com", payment_token=token, country="GB"),
            c.Subscribe(command_id=f"sub-{i}", at=AT, customer_id=f"cus-{i}", plan_id="basic",
                        subscription_id=f"sub-{i}"),
        ]  # fmt: skip
    with Runtime(Config(data_dir=data_dir)) as runtime:
        runtime.ledger.execute_batch(commands)
        runtime.catch_up()


def advance(data_dir: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    return subprocess.Popen(
        [SUBLEDGER, "--data-dir", str(data_dir), "clock", "advance", "--to", "2026-01-01",
         "--command-id", "advance-2025", "--format", "json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def stored_events(data_dir: Path) -> int:
    db = sqlite3.connect(f"file:{data_dir / 'events.sqlite'}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0]
    finally:
        db.close()


def book_state(data_dir: Path) -> tuple[list, dict, list]:
    with Runtime(Config(data_dir=data_dir)) as runtime:
        runtime.catch_up()
        subs = runtime.db.query(
            "SELECT subscription_id, status, current_period_end FROM subscriptions"
            " ORDER BY subscription_id"
        )
        return reports.invoices(runtime.db), reports.mrr(runtime.db), subs


def test_kill_9_mid_advance_then_the_rerun_finishes_without_doubles(tmp_path: Path) -> None:
    crashed, calm = tmp_path / "crashed", tmp_path / "calm"
    make_book(crashed)
    make_book(calm)
    before = stored_events(crashed)

    proc = advance(crashed)
    deadline = time.monotonic() + 120
    while stored_events(crashed) < before + 2000:  # some chunks are in, far from all
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "the advance never got going"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)

    rerun = advance(crashed)
    assert rerun.wait(300) == 0, rerun.stderr.read() if rerun.stderr else ""
    assert advance(calm).wait(300) == 0

    invoices, mrr, subs = book_state(crashed)
    assert (invoices, mrr, subs) == book_state(calm)
    numbers = [int(i["number"].removeprefix("INV-")) for i in invoices]
    assert numbers == list(range(1, len(numbers) + 1))  # gapless, none twice
    per_period = {(i["subscription_id"], i["period_start"]) for i in invoices}
    assert len(per_period) == len(invoices)  # no period billed twice
    assert len(invoices) > SUBSCRIPTIONS * 20
