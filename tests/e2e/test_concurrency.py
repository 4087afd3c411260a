"""The data dir under hostile use, through the installed `subledger` as a user runs it.

Several processes at once on one embedded data dir: each command is applied fully (exit 0:
in the store and in the read models) or not at all (one `error:` line, no receipt, and the
same command id applies it later); the read models end complete, with gapless invoice
numbers, no lag, no fault, and rebuilds give the same rows back. And a read model with a
bug on one event never fails a command nor bricks the data dir."""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from bootstrap import projections
from domain.identity import receipt_uuid

SUBLEDGER = str(Path(sys.executable).with_name("subledger"))
WRITERS = 5  # processes registering and subscribing customers, plus one advancing the clock
CUSTOMERS = 3  # per writer


@dataclass
class Call:
    args: tuple[str, ...]
    command_id: str
    proc: subprocess.CompletedProcess


def user_env() -> dict[str, str]:
    """The user's environment without any service settings: the embedded default."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    env["SUBLEDGER_ACTOR"] = "e2e-user"
    return env


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SUBLEDGER, "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env=user_env(),
        timeout=180,
        stdin=subprocess.DEVNULL,
    )


def ok(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    proc = cli(data_dir, *args)
    assert proc.returncode == 0, f"{args}: {proc.stderr}"
    return proc


def issue(data_dir: Path, command_id: str, *args: str) -> Call:
    return Call(args, command_id, cli(data_dir, *args, "--command-id", command_id))


def receipts(data_dir: Path, command_id: str) -> int:
    """How many receipts the event store holds for `command_id` (0 or 1)."""
    store = sqlite3.connect(f"file:{data_dir / 'events.sqlite'}?mode=ro", uri=True, timeout=30)
    try:
        return store.execute(
            "SELECT COUNT(*) FROM stored_events WHERE originator_id = ?",
            (receipt_uuid(command_id).hex,),
        ).fetchone()[0]
    finally:
        store.close()


def read_model(data_dir: Path) -> dict[str, list[tuple]]:
    """Every row of every projection's tables in read.sqlite, in a stable order."""
    db = sqlite3.connect(f"file:{data_dir / 'read.sqlite'}?mode=ro", uri=True, timeout=30)
    try:
        out = {}
        for projection in projections():
            for table in projection.tables:
                rows = db.execute(f"SELECT * FROM {table}").fetchall()
                out[table] = sorted(rows, key=repr)
        return out
    finally:
        db.close()


def test_concurrent_processes_apply_each_command_fully_or_not_at_all(tmp_path: Path) -> None:
    data = tmp_path / "book"
    ok(data, "plan", "define", "basic", "--name", "Basic", "--price", "10.00",
       "--currency", "USD", "--at", "2024-01-01", "--command-id", "plan-basic")  # fmt: skip
    calls: list[Call] = []
    start = threading.Barrier(WRITERS + 1)

    def writer(w: int) -> None:
        start.wait()
        for i in range(CUSTOMERS):
            customer, email = f"cus-{w}-{i}", f"ada-{w}-{i}@example.com"
            register = ("customer", "register", customer, "--name", "Ada", "--email", email,
                        "--payment-token", "tok_visa", "--at", "2024-01-01",
                        "--format", "json")  # fmt: skip
            calls.append(issue(data, f"reg-{w}-{i}", *register))
            subscribe = ("subscribe", customer, "basic", "--subscription-id", f"sub-{w}-{i}",
                         "--at", "2024-01-01", "--format", "json")  # fmt: skip
            calls.append(issue(data, f"sub-{w}-{i}", *subscribe))

    def clock() -> None:
        start.wait()
        for to in ("2024-02-10", "2024-03-10"):
            calls.append(
                issue(data, f"advance-{to}", "clock", "advance", "--to", to, "--format", "json")
            )

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    threads.append(threading.Thread(target=clock))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == WRITERS * CUSTOMERS * 2 + 2

    # every command: applied once (exit 0 and its receipt) or not at all (one error line)
    failed = []
    for call in calls:
        assert "Traceback" not in call.proc.stderr and "constraint" not in call.proc.stderr
        if call.proc.returncode == 0:
            assert json.loads(call.proc.stdout)["duplicate"] is False, call.args
            assert receipts(data, call.command_id) == 1, call.args
        else:
            lines = call.proc.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), call.proc.stderr
            assert receipts(data, call.command_id) == 0, call.args
            failed.append(call)
    for call in failed:  # retryable: the same command id applies it now, once
        again = issue(data, call.command_id, *call.args)
        assert again.proc.returncode == 0, again.proc.stderr
        assert json.loads(again.proc.stdout)["duplicate"] is False
    assert len(failed) <= len(calls) // 4, [c.proc.stderr for c in failed]

    # the effects, in the read models: every subscription billed period after period, up to
    # the clock (one subscribed after an advance took effect at the clock: its own anchor)
    ok(data, "clock", "advance", "--to", "2024-03-20", "--command-id", "advance-final")
    subscriptions = json.loads(ok(data, "subscription", "list", "--format", "json").stdout)
    expected = {f"sub-{w}-{i}" for w in range(WRITERS) for i in range(CUSTOMERS)}
    assert {s["subscription_id"] for s in subscriptions} == expected
    invoices = json.loads(ok(data, "invoices", "list", "--format", "json").stdout)
    periods: dict[str, list[tuple[str, str]]] = {}
    for invoice in invoices:
        assert (invoice["status"], invoice["total"], invoice["amount_paid"]) == ("paid", 1000, 1000)
        periods.setdefault(invoice["subscription_id"], []).append(
            (invoice["period_start"], invoice["period_end"])
        )
    for sub in subscriptions:
        billed = sorted(periods[sub["subscription_id"]])
        assert all(a[1] == b[0] for a, b in itertools.pairwise(billed)), billed  # no gap, no double
        assert billed[0][0] >= "2024-01-01" and billed[-1][0] <= "2024-03-20T00:00:00Z"
        assert (sub["status"], sub["current_period_end"]) == ("active", billed[-1][1])
        assert sub["current_period_end"] > "2024-03-20T00:00:00Z"
    numbers = sorted(int(i["number"].removeprefix("INV-")) for i in invoices)
    assert numbers == list(range(1, len(invoices) + 1))  # gapless, no doubles

    # caught up, nothing stuck; a rebuild of each read model gives the live rows back
    status = json.loads(ok(data, "projections", "status", "--format", "json").stdout)
    from bootstrap import projections  # every read model

    names = {p.name for p in projections()}
    assert {(s["projection"], s["lag"], s["stuck"]) for s in status} == {
        (name, 0, None) for name in names
    }
    live = read_model(data)
    customers = {f"cus-{w}-{i}" for w in range(WRITERS) for i in range(CUSTOMERS)}
    assert {row[0] for row in live["customers"]} == customers
    for name in ("billing", "metrics"):
        rebuilt = json.loads(ok(data, "projections", "rebuild", name, "--format", "json").stdout)
        assert rebuilt == {"projection": name, "events_applied": status[0]["head"]}
    assert read_model(data) == live


# ---- a read model with a bug ------------------------------------------------------------------

BUG = '''"""Test-only, loaded at start-up: billing overflows on subscription 'bad'."""
import dataclasses

from projections.billing import BillingProjection

_original = BillingProjection.on_Subscription_Subscribed


def _buggy(self, db, r):
    if r.data["subscription_id"] == "bad":
        r = dataclasses.replace(r, data={**r.data, "mrr": 2**63})
    _original(self, db, r)


BillingProjection.on_Subscription_Subscribed = _buggy
'''


def test_a_read_model_bug_never_fails_a_command_nor_bricks_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "book"
    ok(data, "plan", "define", "basic", "--name", "Basic", "--price", "10.00",
       "--currency", "USD", "--at", "2024-01-01")  # fmt: skip
    bug = tmp_path / "bug"
    bug.mkdir()
    (bug / "sitecustomize.py").write_text(BUG)
    paths = [str(bug), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))

    def customer(sub: str, at: str = "2024-01-01") -> subprocess.CompletedProcess:
        ok(data, "customer", "register", f"cus-{sub}", "--name", "Ada", "--email",
           f"{sub}@example.com", "--payment-token", "tok_visa", "--at", at)  # fmt: skip
        return ok(data, "subscribe", f"cus-{sub}", "basic", "--subscription-id", sub,
                  "--at", at, "--format", "json")  # fmt: skip

    customer("good")
    subscribed = customer("bad")  # recorded: exit 0, one warning, the outcome on stdout
    assert json.loads(subscribed.stdout)["subscription_id"] == "bad"
    (warning,) = subscribed.stderr.strip().splitlines()
    assert warning.startswith("warning: read model billing stuck at ")
    assert warning.endswith(
        "(Subscription.Subscribed): Python int too large to convert to SQLite INTEGER;"
        " its reports stop there: fix the cause, then run 'subledger projections rebuild billing'"
    )
    later = customer("later", "2024-01-02")  # the data dir still takes commands and reads
    assert later.returncode == 0 and len(later.stderr.strip().splitlines()) == 1
    mrr = json.loads(ok(data, "report", "mrr", "--format", "json").stdout)
    assert mrr["USD"]["active_subscriptions"] == 3  # metrics went on to the head

    status = json.loads(ok(data, "projections", "status", "--format", "json").stdout)
    billing, metrics = status[0], status[1]  # then the others
    head = metrics["head"]
    stuck_at = billing["stuck"]["position"]
    assert (metrics["position"], metrics["lag"], metrics["stuck"]) == (head, 0, None)
    assert billing["position"] == stuck_at - 1 and billing["lag"] == head - stuck_at + 1
    assert billing["stuck"]["event"] == "Subscription.Subscribed"
    table = ok(data, "projections", "status").stdout
    assert f"stuck at {stuck_at} (Subscription.Subscribed)" in table

    # due work is still found, for the subscriptions billing never saw too
    advanced = ok(data, "clock", "advance", "--to", "2024-02-05", "--command-id", "feb",
                  "--format", "json")  # fmt: skip
    assert json.loads(advanced.stdout)["renewals"] == 3
    assert advanced.stderr.startswith("warning: read model billing stuck at ")
    rebuild = cli(data, "projections", "rebuild", "billing")  # the bug is still there
    assert rebuild.returncode == 1
    assert rebuild.stderr.strip() == (
        f"error: rebuilding billing stopped: stuck at {stuck_at} (Subscription.Subscribed):"
        " Python int too large to convert to SQLite INTEGER; the read model stays there"
        " (see 'subledger projections status'); this is a bug to report"
    )

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths[1:]))  # the bug fixed
    head = json.loads(ok(data, "projections", "status", "--format", "json").stdout)[0]["head"]
    rebuilt = json.loads(ok(data, "projections", "rebuild", "billing", "--format", "json").stdout)
    assert rebuilt == {"projection": "billing", "events_applied": head}
    invoices = json.loads(ok(data, "invoices", "list", "--format", "json").stdout)
    assert sorted((i["subscription_id"], i["period_start"][:10]) for i in invoices) == [
        ("bad", "2024-01-01"), ("bad", "2024-02-01"), ("good", "2024-01-01"),
        ("good", "2024-02-01"), ("later", "2024-01-02"), ("later", "2024-02-02"),
    ]  # fmt: skip
    status = ok(data, "projections", "status", "--format", "json")
    assert {(s["lag"], s["stuck"]) for s in json.loads(status.stdout)} == {(0, None)}
    assert status.stderr == ""
