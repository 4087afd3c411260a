"""Kafka mode: the notifications projection fed from `subledger.events` in its own group, and
`serve --workers notifications` sending its outbox to a real SMTP server, on PostgreSQL."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from pipeline_support import Served, Upstream, make_config, wait_projected

from bootstrap import Runtime, notifier
from domain import commands as c
from domain.notifications import delivery_uuid

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from notify_support import SMTPServer, body

AT = datetime(2025, 3, 1, tzinfo=UTC)


def wait_for(predicate, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.2)


def test_serve_sends_the_outbox_by_email_once(
    services, pg_database_pair, make_topic, tmp_path
) -> None:
    with SMTPServer() as smtp:
        config = make_config(
            services,
            pg_database_pair,
            make_topic,
            tmp_path / "data",
            smtp_url=smtp.url,
            smtp_from="billing@example.com",
            gateway="sandbox",
        )
        workers = ["commands", "relay", "projections", "payments", "notifications"]
        served = Served(config, workers)
        upstream = Upstream(config)
        runtime = Runtime(config)
        try:
            upstream.publish_in_order(
                runtime.ledger,
                [
                    c.DefinePlan(command_id="plan", at=AT, plan_id="pro", name="Pro",
                                 currency="EUR",
                                 pricing={"model": "flat", "amount": 4900, "tiers": []})
                ],
            )  # fmt: skip
            upstream.publish_in_order(
                runtime.ledger,
                [
                    c.RegisterCustomer(command_id="reg", at=AT, customer_id="cus", name="Émile",
                                       email="emile@example.com", payment_token="tok_visa"),
                    c.Subscribe(command_id="sub", at=AT, customer_id="cus", plan_id="pro",
                                subscription_id="s1"),
                ],
            )  # fmt: skip
            wait_for(lambda: len(smtp.inbox.messages) >= 2)
            wait_projected(config, runtime)
            welcome, receipt = smtp.inbox.messages[:2]
            assert welcome["Subject"] == "Welcome, Émile"  # encoded in the header, decoded here
            assert welcome["To"] == "Émile <emile@example.com>"
            assert receipt["Subject"] == "Receipt for invoice INV-000001: 49.00 EUR paid"
            assert "plan Pro" in body(receipt)

            def all_settled() -> bool:
                rows = runtime.db.query("SELECT status FROM notifications")
                return bool(rows) and all(r["status"] != "pending" for r in rows)

            wait_for(all_settled)
            rows = runtime.db.query(
                "SELECT message_id, template, channel, status FROM notifications"
                " ORDER BY template, channel"
            )
            assert [(r["template"], r["channel"], r["status"]) for r in rows] == [
                ("receipt", "email", "sent"),
                ("receipt", "in_app", "sent"),
                ("receipt", "webhook", "handed_off"),
                ("welcome", "email", "sent"),
                ("welcome", "in_app", "sent"),
                ("welcome", "webhook", "handed_off"),
            ]
            for row in rows:
                steps = [type(e).__name__ for e in runtime.ledger.history(
                    delivery_uuid(row["message_id"]))]  # fmt: skip
                assert steps.count("Sent") <= 1 and steps[0] == "Opened"
        finally:
            served.close()
            upstream.close()
        # a dispatcher started afresh (a restart) finds nothing to send again
        again = notifier(runtime).deliver()
        assert sum(again.values()) == 0
        assert len(smtp.inbox.messages) == 2
        runtime.close()
