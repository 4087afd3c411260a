"""`subledger status` embedded, as an operator reads it: the store's head, each projection's
position and lag, the ledger clock and what is due next; a stopped read model says where."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from test_cli import as_csv, as_json, runner

from verbs.pipeline import STATUS_COLUMNS


def test_status_embedded_in_json_and_csv(tmp_path: Path) -> None:
    run = runner(tmp_path / "book")
    run("plan", "define", "pro", "--name", "Pro", "--price", "29.00", "--currency", "USD",
        "--at", "2025-01-01")  # fmt: skip
    run("customer", "register", "ada", "--name", "Ada", "--email", "ada@example.com",
        "--payment-token", "tok_visa", "--at", "2025-01-01")  # fmt: skip
    run("subscribe", "ada", "pro", "--subscription-id", "s1", "--at", "2025-01-10")
    state = as_json(run("status", "--format", "json"))
    assert state["mode"] == "embedded" and state["head"] > 5
    assert (state["commands"], state["relay"], state["rejected"]) == (None, None, None)
    assert {p["projection"] for p in state["projections"]} >= {"billing", "metrics"}
    assert all(p["lag"] == 0 and p["position"] == state["head"] for p in state["projections"])
    assert state["clock"] == "2025-01-10T00:00:00Z"
    assert state["due"] == {"next_at": "2025-02-10T00:00:00Z", "due_at_clock": 0}

    rows = as_csv(run("status", "--format", "csv"))
    assert tuple(rows[0]) == STATUS_COLUMNS
    assert [list(r.values()) for r in rows if r["section"] in ("store", "due")] == [
        ["store", "head", "", str(state["head"]), "", "", "embedded"],
        ["due", "next", "", "", "", "0", "2025-02-10T00:00:00Z"],
    ]

    # a read model stopped on an event: its row says so
    with sqlite3.connect(tmp_path / "book" / "read.sqlite") as db:
        db.execute(
            "INSERT INTO projection_faults (projection, source, position, event, reason,"
            " recorded_at) VALUES ('metrics', 'log', 3, 'Subscription.Renewed', 'boom', 'x')"
        )
    stopped = as_json(run("status", "--format", "json"))
    [metrics] = [p for p in stopped["projections"] if p["projection"] == "metrics"]
    assert metrics["stopped"] == {
        "position": 3, "event": "Subscription.Renewed", "reason": "boom", "recorded_at": "x"
    }  # fmt: skip
    table = run("status").stdout
    assert "STOPPED at 3 (Subscription.Renewed): boom" in table
