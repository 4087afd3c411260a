"""kill -9 in the middle of a burst: after a restart every command's effect is there once.

`subledger serve` runs as a real subprocess; SIGKILL gives it no chance to clean up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from pipeline_support import Upstream, events_per_command, make_config

from bootstrap import Runtime
from consumers import kafka as k
from consumers.commands import tracking_name
from consumers.projector import wait_caught_up
from domain import commands as c
from projections import reports

SUBLEDGER = str(Path(sys.executable).with_name("subledger"))
AT = datetime(2025, 3, 1, tzinfo=UTC)
BURST = 300


def start_serve(config, workers: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, **config.serve_env(), "SUBLEDGER_LOG_LEVEL": "WARNING"}
    with open(log, "ab") as out:
        return subprocess.Popen(
            [SUBLEDGER, "serve", "--workers", workers, "--clock", "manual"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def applied_so_far(ledger, config, partitions=3) -> int:
    total = 0
    for p in range(partitions):
        last = ledger.recorder.max_tracking_id(tracking_name(config.commands_topic, p))
        total += 0 if last is None else last + 1
    return total


def kill_when(proc: subprocess.Popen, ready, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, "serve exited on its own"
        assert time.monotonic() < deadline, "never reached the kill point"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


def test_kill_9_mid_burst_then_restart_applies_every_command_once(
    services, pg_database_pair, make_pg_database, make_topic, tmp_path
) -> None:
    config = make_config(services, pg_database_pair, make_topic, tmp_path / "data")
    k.ensure_topics(config)
    log = tmp_path / "serve.log"
    setup = [
        c.DefinePlan(
            command_id="plan",
            at=AT,
            plan_id="pro",
            name="Pro",
            currency="USD",
            pricing={"model": "flat", "amount": 4900, "tiers": []},
            interval="month",
            interval_count=1,
        )
    ]
    setup += [
        c.RegisterCustomer(
            command_id=f"reg-{i}",
            at=AT,
            customer_id=f"cust-{i}",
            name=f"C {i}",
            email=f"c{i}@example.com",
            payment_token="tok_visa",
            country="DE",
        )
        for i in range(50)
    ]
    burst = [
        c.Subscribe(
            command_id=f"sub-{i}",
            at=AT,
            subscription_id=f"s-{i}",
            customer_id=f"cust-{i % 50}",
            plan_id="pro",
        )
        for i in range(BURST)
    ]

    proc = start_serve(config, "commands,relay,projections", log)
    upstream = Upstream(config)
    runtime = Runtime(config)
    try:
        upstream.send(setup[0])
        upstream.wait_applied(runtime.ledger)
        for command in setup[1:]:
            upstream.send(command)
        upstream.wait_applied(runtime.ledger)
        before = applied_so_far(runtime.ledger, config)
        for command in burst:
            upstream.send(command)
        upstream.flush()
        kill_when(proc, lambda: applied_so_far(runtime.ledger, config) > before + 10)
        done_at_kill = applied_so_far(runtime.ledger, config) - before
        assert 0 < done_at_kill < BURST, f"the kill was not mid-burst ({done_at_kill})"

        proc = start_serve(config, "commands,relay,projections", log)
        upstream.wait_applied(runtime.ledger, timeout=120)
        assert wait_caught_up(config, runtime.ledger, runtime.projections, runtime.db, 120)

        counts = events_per_command(runtime.ledger)
        for i in range(BURST):  # each command's effect exactly once
            assert counts.get((f"sub-{i}", "Subscription.Subscribed")) == 1, i
            assert counts.get((f"sub-{i}", "CommandReceipt.Applied")) == 1, i
        invoices = reports.invoices(runtime.db)
        assert len(invoices) == BURST
        assert len({i["subscription_id"] for i in invoices}) == BURST
        assert reports.mrr(runtime.db)["USD"]["mrr"] == BURST * 4900
        expected_invoices, expected_mrr = invoices, reports.mrr(runtime.db)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        upstream.close()
        runtime.close()

    # a projection-only worker, rebuilding a fresh read DB from the events topic, killed
    second = config.with_overrides(
        read_db=make_pg_database("read2"), group_prefix=f"{config.group_prefix}-2"
    )
    proc = start_serve(second, "projections", log)
    runtime = Runtime(second)
    try:

        def mid_batch() -> bool:
            rows = runtime.db.query("SELECT COUNT(*) AS n FROM projection_positions")
            return rows[0]["n"] > 0

        kill_when(proc, mid_batch)
        assert not wait_caught_up(second, runtime.ledger, runtime.projections, runtime.db, 0.1)
        proc = start_serve(second, "projections", log)
        assert wait_caught_up(second, runtime.ledger, runtime.projections, runtime.db, 120)
        assert reports.invoices(runtime.db) == expected_invoices
        assert reports.mrr(runtime.db) == expected_mrr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
        runtime.close()


def invoice_numbers(ledger) -> list[int]:
    """Every invoice number the ledger issued, from its notification log."""
    numbers, start = [], 0
    while batch := ledger.recorder.select_notifications(
        start=start, limit=1000, inclusive_of_start=False
    ):
        for n in batch:
            if n.topic.endswith("Subscription.Invoiced"):
                numbers.append(int(ledger.mapper.to_domain_event(n).number.removeprefix("INV-")))
        start = batch[-1].id
    return sorted(numbers)


def group_members(config, group: str) -> list[dict]:
    """The members of a stable consumer group, each with its assignment."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=config.kafka_bootstrap)
    try:
        info = admin.describe_groups([group])[group]
        return list(info.get("members") or []) if info.get("group_state") == "Stable" else []
    finally:
        admin.close()


def test_two_serve_processes_in_one_group_share_partitions_and_apply_each_command_once(
    services, pg_database_pair, make_topic, tmp_path
) -> None:
    config = make_config(services, pg_database_pair, make_topic, tmp_path / "data")
    k.ensure_topics(config)
    log = tmp_path / "serve.log"
    procs = [start_serve(config, "commands", log) for _ in range(2)]
    upstream = Upstream(config)
    runtime = Runtime(config)
    try:
        deadline = time.monotonic() + 90
        while len(members := group_members(config, f"{config.group_prefix}-ledger")) != 2:
            assert all(p.poll() is None for p in procs), log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the two processes never formed one group"
            time.sleep(0.5)
        shares = [
            sorted(
                p for a in m["member_assignment"]["assigned_partitions"] for p in a["partitions"]
            )
            for m in members
        ]
        assert all(shares) and sorted(p for share in shares for p in share) == [0, 1, 2], shares
        commands = [
            c.RegisterCustomer(
                command_id=f"reg-{i}",
                at=AT,
                customer_id=f"cust-{i}",
                name=f"C {i}",
                email=f"c{i}@example.com",
                payment_token="tok_visa",
                country="GB",
            )
            for i in range(200)
        ]
        upstream.send(
            c.DefinePlan(command_id="plan", at=AT, plan_id="pro", name="Pro", currency="USD",
                         pricing={"model": "flat", "amount": 4900, "tiers": []})
        )  # fmt: skip
        upstream.wait_applied(runtime.ledger)
        for i, command in enumerate(commands):  # each customer's commands share a partition
            upstream.send(command)
            upstream.send(c.Subscribe(command_id=f"sub-{i}", at=AT, customer_id=f"cust-{i}",
                                      plan_id="pro", subscription_id=f"s-{i}"))  # fmt: skip
        for command in commands[:20]:  # the first 20 ids twice
            upstream.send(command)
        upstream.wait_applied(runtime.ledger, timeout=120)
        counts = events_per_command(runtime.ledger)
        for i in range(200):
            assert counts.get((f"reg-{i}", "Customer.Registered")) == 1, i
            assert counts.get((f"reg-{i}", "CommandReceipt.Applied")) == 1, i
            assert counts.get((f"sub-{i}", "Subscription.Invoiced")) == 1, i
        assert sum(1 for key in counts if key[1] == "Customer.Registered") == 200
        # both workers invoiced at once: the shared invoice sequence stayed gapless
        numbers = invoice_numbers(runtime.ledger)
        assert numbers == list(range(1, 201))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            assert proc.wait(60) == 0, log.read_text()[-3000:]
        upstream.close()
        runtime.close()
