"""Credit and refunds in Kafka mode, on the real broker and PostgreSQL: commands from the
topic, the payments worker (`serve --workers payments`, sandbox gateway chosen explicitly)
charging and refunding after commit, the billing read model fed from the events topic."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pipeline_support import Served, Upstream, make_config, wait_projected

from bootstrap import Config, Runtime
from domain import commands as c
from projections import reports

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def until(what: Callable[[], Any], timeout: float = 90.0) -> Any:
    """What `what` returns once it is truthy (a deadline, not a speed check)."""
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.1)


def test_a_downgrades_credit_and_a_refund_go_through_kafka(
    services, pg_database_pair, make_topic, tmp_path
) -> None:
    config: Config = make_config(
        services, pg_database_pair, make_topic, tmp_path / "kafka", gateway="sandbox"
    )
    served = Served(config, ["commands", "relay", "projections", "payments"])
    upstream = Upstream(config)
    n = 0

    def cmd(cls: type[c.Command], day: int, **fields: Any) -> c.Command:
        nonlocal n
        n += 1
        at = T0.replace(day=day)
        return cls(command_id=f"kafka-credit-{n}", at=at, actor="pytest", source="pytest", **fields)

    flat = {"model": "flat", "tiers": []}
    try:
        with Runtime(config) as runtime:
            upstream.publish_in_order(
                runtime.ledger,
                [
                    cmd(
                        c.DefinePlan,
                        1,
                        plan_id="pro",
                        name="Pro",
                        currency="USD",
                        pricing={**flat, "amount": 3000},
                    ),
                    cmd(
                        c.DefinePlan,
                        1,
                        plan_id="basic",
                        name="Basic",
                        currency="USD",
                        pricing={**flat, "amount": 1000},
                    ),
                    cmd(
                        c.RegisterCustomer,
                        1,
                        customer_id="ada",
                        name="Ada",
                        email="ada@example.com",
                        payment_token="tok_visa",
                    ),
                    cmd(c.Subscribe, 1, customer_id="ada", plan_id="pro", subscription_id="s1"),
                ],
            )

            def paid() -> bool:
                wait_projected(config, runtime)
                return reports.invoices(runtime.db)[0]["status"] == "paid"

            until(paid)  # charged by the payments worker, its outcome back through the topic
            upstream.publish_in_order(
                runtime.ledger,
                [
                    cmd(c.ChangePlan, 20, subscription_id="s1", plan_id="basic", customer_id="ada"),
                    cmd(c.Cancel, 21, subscription_id="s1", immediately=True, customer_id="ada"),
                    cmd(c.Subscribe, 25, customer_id="ada", plan_id="basic", subscription_id="s2"),
                ],
            )
            wait_projected(config, runtime)
            second = reports.invoices(runtime.db, subscription="s2")[0]
            assert (second["total"], second["credit_applied"], second["amount_due"]) == (
                1000,
                774,
                226,
            )
            assert reports.balance(runtime.db, "ada")["USD"]["credit"] == 0

            upstream.publish_in_order(
                runtime.ledger,
                [
                    cmd(
                        c.RefundInvoice,
                        26,
                        subscription_id="s1",
                        invoice_number="INV-000001",
                        amount=500,
                        customer_id="ada",
                    ),
                ],
            )

            def refunded() -> list[dict]:
                wait_projected(config, runtime)
                notes = reports.credit_notes(runtime.db, customer="ada")
                return notes if notes and notes[0]["refund_status"] == "succeeded" else []

            (note,) = until(refunded)
            assert (note["number"], note["invoice_number"], note["amount"]) == (
                "CN-000001",
                "INV-000001",
                500,
            )
            assert note["refund_reference"]
            (row,) = runtime.db.query("SELECT status, idempotency_key FROM refunds")
            assert (row["status"], row["idempotency_key"]) == ("succeeded", "CN-000001:refund")
    finally:
        upstream.close()
        served.close()
