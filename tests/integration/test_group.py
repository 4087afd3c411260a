"""The command workers' consumer group on the real broker: a member the broker expels
(its heartbeats frozen past the session timeout) notices, rejoins, gets partitions again,
and every command still has exactly one effect."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pipeline_support import (
    Upstream,
    events_per_command,
    group_view,
    make_config,
    wait_stable_group,
)

from bootstrap import Config, Runtime
from consumers import kafka as k
from consumers.commands import CommandWorker
from domain import commands as c

SUBLEDGER = str(Path(sys.executable).with_name("subledger"))
AT = datetime(2025, 4, 1, tzinfo=UTC)


@pytest.fixture
def config(services, pg_database_pair, make_topic, tmp_path) -> Config:
    return make_config(services, pg_database_pair, make_topic, tmp_path / "kafka")


def registrations(prefix: str, n: int) -> list[c.RegisterCustomer]:
    return [
        c.RegisterCustomer(
            command_id=f"{prefix}-{i}",
            at=AT,
            customer_id=f"{prefix}-cust-{i}",
            name=f"Customer {i}",
            email=f"{prefix}{i}@example.com",
            payment_token="tok_visa",
        )
        for i in range(n)
    ]


def publish(upstream: Upstream, ledger, commands: list[c.RegisterCustomer]) -> None:
    for command in commands:
        upstream.send(command)
    upstream.wait_applied(ledger, timeout=90)


def assert_each_applied_once(ledger, commands: list[c.RegisterCustomer]) -> None:
    counts = events_per_command(ledger)
    for command in commands:
        assert counts[command.command_id, "Customer.Registered"] == 1, command.command_id
        assert counts[command.command_id, "CommandReceipt.Applied"] == 1, command.command_id
    assert set(counts.values()) == {1}  # no event recorded twice


def wait_only_member(config: Config, group: str, client_id: str, timeout: float = 90.0) -> None:
    """Until the broker holds `client_id` as the group's one member, with every partition."""
    deadline = time.monotonic() + timeout
    while True:
        state, members = group_view(config, group)
        if state == "Stable" and members == [(client_id, [0, 1, 2])]:
            return
        assert time.monotonic() < deadline, f"the broker kept the frozen member: {members}"
        time.sleep(0.2)


def test_a_stranded_member_notices_it_was_expelled_rejoins_and_applies_each_command_once(
    config,
) -> None:
    """kafka-python 3.0.x can stop a member's heartbeats without telling it: the broker
    expels it and it goes on as if nothing happened. Reproduced here by disabling the
    member's heartbeat and holding its poll loop until the broker has expelled it."""
    k.ensure_topics(config)
    group = f"{config.group_prefix}-ledger"
    stop = threading.Event()
    running = {"pytest-w0": threading.Event(), "pytest-w1": threading.Event()}
    parked = {cid: threading.Event() for cid in running}
    runtimes = {cid: Runtime(config) for cid in running}
    workers = {
        cid: CommandWorker(config, runtimes[cid].ledger, poll_ms=200, client_id=cid)
        for cid in running
    }

    def loop(cid: str) -> None:
        try:
            while not stop.is_set():
                if not running[cid].is_set():
                    parked[cid].set()
                    running[cid].wait()
                    parked[cid].clear()
                workers[cid].poll_once()
        finally:
            workers[cid].close()

    threads = [threading.Thread(target=loop, args=(cid,), daemon=True) for cid in running]
    for gate in running.values():
        gate.set()
    for thread in threads:
        thread.start()
    upstream = Upstream(config)
    ledger = runtimes["pytest-w0"].ledger
    before, during, after = (
        registrations("before", 60),
        registrations("during", 60),
        registrations("after", 90),
    )
    try:
        wait_stable_group(config, group, workers)
        publish(upstream, ledger, before)
        assert workers["pytest-w1"].applied > 0

        # strand w1: no heartbeats, and its poll loop held so it cannot notice early
        running["pytest-w1"].clear()
        assert parked["pytest-w1"].wait(30)
        workers["pytest-w1"].consumer._coordinator._disable_heartbeat()
        wait_only_member(config, group, "pytest-w0")  # the broker expelled it
        publish(upstream, ledger, during)  # w0 alone applies these

        running["pytest-w1"].set()  # w1 polls again: it must see it is out and rejoin
        wait_stable_group(config, group, workers)
        assert workers["pytest-w1"].member.rejoins == 1
        assert workers["pytest-w0"].member.rejoins == 0
        done_by_w1 = workers["pytest-w1"].applied
        publish(upstream, ledger, after)
        assert workers["pytest-w1"].applied > done_by_w1  # its partitions are worked again
        for command in before[:10] + during[:10]:  # repeated ids: no second effect
            upstream.send(command)
        upstream.wait_applied(ledger, timeout=90)
        assert_each_applied_once(ledger, before + during + after)
        total = len(before) + len(during) + len(after) + 20
        assert sum(w.applied for w in workers.values()) == total  # each message handled once
    finally:
        stop.set()
        for gate in running.values():
            gate.set()
        for thread in threads:
            thread.join(30)
        upstream.close()
        for runtime in runtimes.values():
            runtime.close()


def test_a_worker_process_frozen_past_the_session_timeout_rejoins_and_applies_each_command_once(
    config, tmp_path
) -> None:
    """SIGSTOP freezes every thread of `subledger serve` (heartbeats included) until the
    broker expels it; after SIGCONT it rejoins and takes its share again."""
    k.ensure_topics(config)
    group = f"{config.group_prefix}-ledger"
    env = {**os.environ, **config.serve_env(), "SUBLEDGER_LOG_LEVEL": "WARNING"}
    log = tmp_path / "serve.log"
    with open(log, "ab") as out:
        serve = subprocess.Popen(
            [SUBLEDGER, "serve", "--workers", "commands", "--clock", "manual"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    stop = threading.Event()
    runtime = Runtime(config)
    worker = CommandWorker(config, runtime.ledger, poll_ms=200, client_id="pytest-w0")
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    upstream = Upstream(config)
    members = {"pytest-w0": worker, "subledger-commands": None}
    before, during, after = (
        registrations("before", 60),
        registrations("during", 60),
        registrations("after", 90),
    )
    try:
        wait_stable_group(config, group, members)
        publish(upstream, runtime.ledger, before)

        os.kill(serve.pid, signal.SIGSTOP)
        try:
            wait_only_member(config, group, "pytest-w0")
            publish(upstream, runtime.ledger, during)
        finally:
            os.kill(serve.pid, signal.SIGCONT)

        shares = wait_stable_group(config, group, members)
        assert shares["subledger-commands"]  # the thawed process holds partitions again
        publish(upstream, runtime.ledger, after)
        assert_each_applied_once(runtime.ledger, before + during + after)
        assert serve.poll() is None, log.read_text()
    finally:
        stop.set()
        thread.join(30)
        upstream.close()
        runtime.close()
        if serve.poll() is None:
            serve.send_signal(signal.SIGTERM)
            serve.wait(60)
    assert serve.returncode == 0, log.read_text()
