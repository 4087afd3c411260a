"""Commands per second through the whole Kafka pipeline, against the ledger's own ceiling.

Run with the services up (`./dev services up; eval "$(./dev services env)"`):

    .venv/bin/python bench/pipeline.py [N]

It measures, in one run and on the same PostgreSQL: the ceiling, N `Subscribe` commands
applied straight through `Ledger.execute_batch` in batches of 500 (no Kafka); then the
pipeline, the same number published to Kafka and applied by `subledger serve`
subprocesses (one each for commands, relay and projections) until every read model has
caught up. It prints both rates and their ratio. Each run uses fresh databases (dropped
afterwards) and topics. It needs the project installed in the venv (`./dev` does that).
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

from harness import Databases, Serve, Upstream

from bootstrap import Runtime
from consumers import kafka as k
from consumers.projector import wait_caught_up
from domain import commands as c

AT = datetime(2025, 3, 1, tzinfo=UTC)
CUSTOMERS = 100


def setup_commands(prefix: str) -> list[c.Command]:
    plan = c.DefinePlan(
        command_id=f"{prefix}-plan",
        at=AT,
        plan_id="pro",
        name="Pro",
        currency="USD",
        pricing={"model": "flat", "amount": 4900, "tiers": []},
    )
    customers = [
        c.RegisterCustomer(
            command_id=f"{prefix}-reg-{i}",
            at=AT,
            customer_id=f"cust-{i}",
            name="C",
            email=f"c{i}@example.com",
            payment_token="tok_visa",
            country="DE",
        )
        for i in range(CUSTOMERS)
    ]
    return [plan, *customers]


def subscribes(prefix: str, n: int) -> list[c.Command]:
    return [
        c.Subscribe(
            command_id=f"{prefix}-sub-{i}",
            at=AT,
            subscription_id=f"s-{i}",
            customer_id=f"cust-{i % CUSTOMERS}",
            plan_id="pro",
        )
        for i in range(n)
    ]


def ceiling(dbs: Databases, n: int) -> float:
    config = dbs.config(kafka=False)
    with Runtime(config) as runtime:
        runtime.ledger.execute_batch(setup_commands("c"))
        work = subscribes("c", n)
        began = time.monotonic()
        for i in range(0, n, 500):
            runtime.ledger.execute_batch(work[i : i + 500])
        return n / (time.monotonic() - began)


def pipeline(dbs: Databases, n: int) -> float:
    config = dbs.config()
    k.ensure_topics(config)
    # one process per kind of worker: they scale out, and share no GIL
    with Serve(config, ("commands", "relay", "projections")), Runtime(config) as runtime:
        upstream = Upstream(config)
        try:
            for command in setup_commands("p"):
                upstream.send(command)
                if command.command_id.endswith("plan"):
                    upstream.wait_applied(runtime.ledger)
            upstream.wait_applied(runtime.ledger)
            assert wait_caught_up(config, runtime.ledger, runtime.projections, runtime.db, 120)
            began = time.monotonic()
            for command in subscribes("p", n):
                upstream.send(command)
            upstream.wait_applied(runtime.ledger, timeout=1200)
            assert wait_caught_up(config, runtime.ledger, runtime.projections, runtime.db, 1200)
            return n / (time.monotonic() - began)
        finally:
            upstream.close()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    dbs = Databases()
    try:
        top = ceiling(dbs, n)
        through = pipeline(dbs, n)
    finally:
        dbs.close()
    print(f"ledger ceiling (execute_batch on PostgreSQL): {top:.0f} commands/s")
    print(f"whole pipeline (Kafka -> ledger -> relay -> read models): {through:.0f} commands/s")
    print(f"pipeline / ceiling: {through / top:.2f}")


if __name__ == "__main__":
    main()
