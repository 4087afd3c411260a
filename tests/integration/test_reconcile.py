"""`audit reconcile`'s comparison on a real SQLite and a real PostgreSQL read DB: a healthy
book is identical to its rebuild, and a row edited, deleted or inserted by hand is named."""

from __future__ import annotations

from typing import Any

import test_persistence
from test_persistence import Backend, Driver, play_small_book

from bootstrap import Runtime, projections
from projections.reconcile import (
    CHANGED,
    EXTRA,
    MISSING,
    STUCK,
    compare_table,
    primary_key,
    reconcile,
    summary,
)

backend = test_persistence.backend  # the same book on SQLite and on PostgreSQL
runtime = test_persistence.runtime


def check(rt: Runtime, **kwargs: Any) -> Any:
    rt.catch_up()
    return reconcile(rt.ledger, rt.db, rt.projections, **kwargs)


def scratch_schemas(rt: Runtime) -> list[str]:
    rows = rt.db.query(
        "SELECT nspname FROM pg_namespace WHERE nspname LIKE ?", ("subledger_reconcile_%",)
    )
    return [r["nspname"] for r in rows]


def test_a_healthy_book_is_identical_to_its_rebuild(runtime: Runtime, backend: Backend) -> None:
    play_small_book(Driver(runtime))
    report = check(runtime)
    assert report.differences == []
    assert report.tables == sum(len(p.tables) for p in runtime.projections)
    invoices = runtime.db.query("SELECT COUNT(*) AS n FROM invoices")[0]["n"]
    assert invoices == 11 and report.rows > invoices
    assert summary(report) == f"{report.tables} tables, {report.rows} rows: identical"
    if backend.name == "postgres":  # the scratch schema is gone
        assert scratch_schemas(runtime) == []


def test_an_invoice_total_edited_by_hand_is_named(runtime: Runtime) -> None:
    play_small_book(Driver(runtime))
    runtime.db.execute("UPDATE invoices SET total = total + 1 WHERE number = 'INV-000006'")
    report = check(runtime)
    assert [(d.difference, d.projection, d.table, d.key, d.column, d.live, d.rebuilt)
            for d in report.differences] == [
        (CHANGED, "billing", "invoices", "number=INV-000006", "total", 3001, 3000)
    ]  # fmt: skip
    assert "billing.invoices" in summary(report)


def test_a_deleted_row_is_missing(runtime: Runtime) -> None:
    play_small_book(Driver(runtime))
    runtime.db.execute("DELETE FROM invoice_lines WHERE number = 'INV-000005' AND line_no = 2")
    report = check(runtime)
    [diff] = report.differences
    assert (diff.difference, diff.table, diff.key, diff.live) == (
        MISSING,
        "invoice_lines",
        "number=INV-000005, line_no=2",
        None,
    )
    assert '"amount": 1500' in diff.rebuilt and '"kind": "proration_charge"' in diff.rebuilt


def test_an_inserted_row_is_extra(runtime: Runtime) -> None:
    play_small_book(Driver(runtime))
    runtime.db.execute(
        "INSERT INTO mrr_movements (event_id, customer_id, subscription_id, currency, at, kind,"
        " delta, mrr_before, mrr_after) VALUES ('forged', 'ada', 's-ada', 'USD',"
        " '2024-03-01T00:00:00Z', 'expansion', 100000, 3000, 103000)"
    )
    report = check(runtime)
    [diff] = report.differences
    assert (diff.difference, diff.projection, diff.table, diff.key, diff.rebuilt) == (
        EXTRA,
        "metrics",
        "mrr_movements",
        "event_id=forged",
        None,
    )
    assert '"delta": 100000' in diff.live


def test_one_projection_alone_is_checked(runtime: Runtime) -> None:
    play_small_book(Driver(runtime))
    runtime.db.execute("UPDATE invoices SET status = 'paid' WHERE number = 'INV-000003'")
    metrics = [p for p in runtime.projections if p.name == "metrics"]
    assert reconcile(runtime.ledger, runtime.db, metrics).identical
    billing = [p for p in runtime.projections if p.name == "billing"]
    [diff] = reconcile(runtime.ledger, runtime.db, billing).differences
    assert (diff.key, diff.column, diff.live, diff.rebuilt) == (
        "number=INV-000003",
        "status",
        "paid",
        "uncollectible",
    )


def test_a_stuck_projection_is_a_difference(runtime: Runtime) -> None:
    play_small_book(Driver(runtime))
    runtime.db.execute(
        "INSERT INTO projection_faults (projection, source, position, event, reason,"
        " recorded_at) VALUES ('metrics', 'log', 7, 'Subscription.Subscribed', 'boom', 'x')"
    )
    report = check(runtime)
    assert [(d.difference, d.projection) for d in report.differences] == [(STUCK, "metrics")]
    assert "stuck at 7 (Subscription.Subscribed): boom" in report.differences[0].live


def test_every_read_model_table_has_a_primary_key() -> None:
    for projection in projections():
        for table, ddl in projection.tables.items():
            assert primary_key(ddl), table
    invoice_lines = projections()[0].tables["invoice_lines"]
    assert primary_key(invoice_lines) == ("number", "line_no")
    assert primary_key(projections()[0].tables["invoices"]) == ("number",)


def test_a_table_without_a_key_is_compared_as_a_multiset() -> None:
    a, b = {"x": 1}, {"x": 2}
    assert compare_table("p", "t", (), [a, a, b], [a, b, a]) == []
    found = compare_table("p", "t", (), [a, b], [a, a, b])
    assert [(d.difference, d.rebuilt) for d in found] == [(MISSING, '{"x": 1}')]


class Mailbox:
    """A mailer that accepts every message (the outbox's statuses come from its answers)."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, email: Any, *, timeout: float | None = None) -> str:
        self.sent.append(email)
        return f"250 queued as {len(self.sent)}"


def test_delivered_notifications_and_an_erasure_still_reconcile(runtime: Runtime) -> None:
    """The outbox's sent_at, attempts and leases come from the Delivery events: a rebuild
    gives them back exactly; an erasure changes read models only through its events."""
    from datetime import UTC, datetime

    from bootstrap import notifier
    from domain import commands as c

    d = Driver(runtime)
    play_small_book(d)
    mailbox = Mailbox()
    dispatcher = notifier(runtime, mailer=mailbox, now=lambda: datetime(2024, 4, 1, 1, tzinfo=UTC))
    assert dispatcher.deliver()["sent"] > 0 and mailbox.sent
    d.run(c.EraseCustomer, datetime(2024, 4, 2, tzinfo=UTC), customer_id="ada")
    sent = runtime.db.query(
        "SELECT COUNT(*) AS n FROM notifications WHERE status = 'sent' AND sent_at IS NOT NULL"
    )
    assert sent[0]["n"] > 0
    assert check(runtime).differences == []
    runtime.db.execute("UPDATE notifications SET attempts = attempts + 1 WHERE status = 'sent'")
    found = check(runtime).differences
    assert found and {(x.table, x.column) for x in found} == {("notifications", "attempts")}


def test_kafka_fed_read_models_reconcile_through_the_cli(
    services: Any, pg_database_pair: Any, make_topic: Any, tmp_path: Any
) -> None:
    """With Kafka the live tables are the projectors': reconcile waits for them to catch up,
    compares them with a rebuild from the store, and names a row edited by hand."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from pipeline_support import Served, make_config, wait_projected
    from test_pipeline import scenario

    config = make_config(services, pg_database_pair, make_topic, tmp_path / "kafka")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    env.update(config.serve_env())
    cli = [str(Path(sys.executable).with_name("subledger")), "audit", "reconcile"]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*cli, *args], capture_output=True, text=True, env=env, timeout=180)

    with Runtime(config) as rt:
        rt.ledger.execute_batch(scenario(customers=4, months=2, seed=5))
        served = Served(config, ["relay", "projections"])
        try:
            proc = run()  # waits for the projectors, then compares
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout.rstrip().endswith("rows: identical")
            wait_projected(config, rt)
            [first] = rt.db.query("SELECT number, total FROM invoices ORDER BY number LIMIT 1")
            rt.db.execute(
                "UPDATE invoices SET total = total + 7 WHERE number = ?", (first["number"],)
            )
            proc = run("--format", "json")
        finally:
            served.close()
    assert proc.returncode == 1
    assert json.loads(proc.stdout) == [
        {
            "difference": CHANGED,
            "projection": "billing",
            "table": "invoices",
            "key": f"number={first['number']}",
            "column": "total",
            "live": first["total"] + 7,
            "rebuilt": first["total"],
        }
    ]
    assert "billing.invoices" in proc.stderr
    # a projector stopped on an event never catches up: reconcile says so, at once
    with Runtime(config) as rt:
        rt.db.execute(
            "INSERT INTO projection_faults (projection, source, position, event, reason,"
            " recorded_at) VALUES ('metrics', ?, 3, 'Subscription.Renewed', 'boom', 'x')",
            (f"{config.events_topic}:0",),
        )
    proc = run("--projection", "metrics", "--format", "json")
    assert proc.returncode == 1
    [diff] = json.loads(proc.stdout)
    assert (diff["difference"], diff["projection"], diff["key"]) == (
        STUCK,
        "metrics",
        f"{config.events_topic}:0",
    )
    assert "stuck at 3 (Subscription.Renewed): boom" in diff["live"]
