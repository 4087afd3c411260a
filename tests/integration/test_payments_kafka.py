"""Payments in Kafka mode: `serve --workers payments` charges what the ledger asked for after
commit, in its own consumer group, and feeds the outcome back on the commands topic."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline_support import Served, Upstream, make_config, wait_projected

from bootstrap import Runtime
from domain import commands as c
from domain.identity import subscription_uuid

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
FLAT = {"model": "flat", "amount": 2500, "tiers": []}


def cmd(cls: type[c.Command], command_id: str, at: datetime, **fields: Any) -> c.Command:
    return cls(command_id=command_id, at=at, actor="pytest", source="pytest", **fields)


def events(runtime: Runtime, subscription_id: str, name: str) -> list[Any]:
    return [
        e
        for e in runtime.ledger.history(subscription_uuid(subscription_id))
        if type(e).__name__ == name
    ]


def wait_for(check: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.1)


def test_a_declined_card_fails_once_per_attempt_then_churns_with_no_invoice_after(
    services, pg_database_pair, make_topic, tmp_path
) -> None:
    config = make_config(services, pg_database_pair, make_topic, tmp_path / "data")
    config = config.with_overrides(gateway="sandbox")
    served = Served(config, ["commands", "relay", "projections", "payments"])
    upstream = Upstream(config)
    runtime = Runtime(config)
    try:
        upstream.publish_in_order(
            runtime.ledger,
            [
                cmd(c.DefinePlan, "plan", T0, plan_id="basic", name="Basic", currency="USD",
                    pricing=FLAT),
                cmd(c.RegisterCustomer, "reg-bad", T0, customer_id="bad", name="B",
                    email="b@example.com", payment_token="tok_chargeDeclinedInsufficientFunds"),
                cmd(c.RegisterCustomer, "reg-ok", T0, customer_id="ok", name="O",
                    email="o@example.com", payment_token="tok_visa"),
                cmd(c.Subscribe, "sub-bad", T0, customer_id="bad", plan_id="basic",
                    subscription_id="s-bad"),
                cmd(c.Subscribe, "sub-ok", T0, customer_id="ok", plan_id="basic",
                    subscription_id="s-ok"),
            ],
        )  # fmt: skip
        wait_for(lambda: events(runtime, "s-ok", "PaymentSucceeded"), "the good card's payment")
        # dunning: each retry is asked for by a clock advance once the last outcome is in
        for attempt, day in enumerate([0, 1, 3, 5, 7], start=1):
            if day:
                upstream.send(cmd(c.AdvanceClock, f"tick-{day}", T0 + timedelta(days=day)))
                upstream.wait_applied(runtime.ledger)
            wait_for(
                lambda n=attempt: len(events(runtime, "s-bad", "PaymentFailed")) == n,
                f"payment failed, attempt {attempt}",
            )
        upstream.send(cmd(c.AdvanceClock, "tick-later", T0 + timedelta(days=70)))
        upstream.wait_applied(runtime.ledger)
        wait_for(lambda: len(events(runtime, "s-ok", "PaymentSucceeded")) == 3, "renewals paid")
        wait_projected(config, runtime)

        failures = events(runtime, "s-bad", "PaymentFailed")
        assert [(e.attempt, e.reason, e.message, e.timestamp) for e in failures] == [
            (n, "insufficient_funds", "Your card has insufficient funds.",
             T0 + timedelta(days=day))
            for n, day in enumerate([0, 1, 3, 5, 7], start=1)
        ]  # fmt: skip
        requests = events(runtime, "s-bad", "ChargeRequested")
        assert [r.idempotency_key for r in requests] == [f"INV-000001:{n}" for n in range(1, 6)]
        (churned,) = events(runtime, "s-bad", "Churned")
        assert (churned.kind, churned.reason, churned.timestamp) == (
            "involuntary",
            "payment_failed:insufficient_funds",
            T0 + timedelta(days=7),
        )
        invoices = runtime.db.query(
            "SELECT number, subscription_id, status, attempts FROM invoices ORDER BY number"
        )
        bad = [i for i in invoices if i["subscription_id"] == "s-bad"]
        assert bad == [  # no invoice after the churn
            {"number": "INV-000001", "subscription_id": "s-bad", "status": "uncollectible",
             "attempts": 5}
        ]  # fmt: skip
        ok = [i["status"] for i in invoices if i["subscription_id"] == "s-ok"]
        assert ok == ["paid", "paid", "paid"]  # signup and two renewals
        charged = runtime.ledger.gateway.calls()  # the sandbox's own record, one row per key
        assert set(charged) == {
            *(f"INV-000001:{n}" for n in range(1, 6)),
            "INV-000002:1",  # the good card's signup, then its two renewals
            "INV-000003:1",
            "INV-000004:1",
        }
        rows = runtime.db.query(
            "SELECT attempt, reason, message FROM payments WHERE subscription_id = 's-bad'"
            " ORDER BY attempt"
        )
        assert [(r["attempt"], r["reason"]) for r in rows] == [
            (n, "insufficient_funds") for n in range(1, 6)
        ]
        assert {r["message"] for r in rows} == {"Your card has insufficient funds."}
    finally:
        served.close()
        upstream.close()
        runtime.close()
