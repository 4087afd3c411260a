"""`subledger serve` rides out the loss of PostgreSQL and of Kafka: kill -9 of the postmaster
(back 8 s later), then kill -9 of the broker (back after a pause), while upstream goes on
sending commands. `serve` keeps running, says in its log what it lost, reconnects, and in the
end every command's effect is there exactly once, invoice numbers gapless, the read models
equal to a rebuild.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import urlopen

from pipeline_support import Upstream, events_per_command

from bootstrap import Config, Runtime
from consumers import kafka as k
from consumers.projector import wait_caught_up
from domain import commands as c
from projections import reports
from projections.reconcile import reconcile

SUBLEDGER = str(Path(sys.executable).with_name("subledger"))
AT = datetime(2025, 3, 1, tzinfo=UTC)
CUSTOMERS = 12


def subscribe(i: int) -> c.Subscribe:
    return c.Subscribe(
        command_id=f"sub-{i}",
        at=AT,
        subscription_id=f"s-{i}",
        customer_id=f"cust-{i % CUSTOMERS}",
        plan_id="pro",
    )


def wait_until(what: str, ready: Any, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        assert proc.poll() is None, f"serve exited:\n{log.read_text()[-3000:]}"
        try:
            if ready():
                return
        except Exception as exc:  # the service is still coming back
            last = exc
        assert time.monotonic() < deadline, (
            f"{what}: not in {timeout}s (last error: {last!r})\n{log.read_text()[-3000:]}"
        )
        time.sleep(0.25)


def get(url: str) -> tuple[int, str]:
    try:
        with urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except HTTPError as exc:
        return exc.code, exc.read().decode()


def metric(text: str, line_start: str) -> float:
    values = [float(x.rsplit(" ", 1)[1]) for x in text.splitlines() if x.startswith(line_start)]
    assert len(values) == 1, (line_start, text[-2000:])
    return values[0]


def paid(config: Config) -> int:
    with Runtime(config) as rt:
        counts = events_per_command(rt.ledger)
    return sum(n for (_cmd, event), n in counts.items() if event == "Subscription.PaymentSucceeded")


def applied(config: Config, n: int) -> bool:
    with Runtime(config) as rt:
        counts = events_per_command(rt.ledger)
    return all((f"sub-{i}", "CommandReceipt.Applied") in counts for i in range(n))


def test_serve_rides_out_a_postgresql_and_a_broker_restart(
    own_services: Any, tmp_path: Path
) -> None:
    s = own_services.settings
    config = Config.from_env(
        {
            "SUBLEDGER_DATA_DIR": str(tmp_path / "data"),
            "SUBLEDGER_EVENT_STORE": s["SUBLEDGER_EVENT_STORE"],
            "SUBLEDGER_READ_DB": s["SUBLEDGER_READ_DB"],
            "SUBLEDGER_KEY_STORE": s["SUBLEDGER_KEY_STORE"],
            "SUBLEDGER_KAFKA_BOOTSTRAP": s["SUBLEDGER_KAFKA_BOOTSTRAP"],
            "SUBLEDGER_COMMANDS_TOPIC": "faults.commands",
            "SUBLEDGER_EVENTS_TOPIC": "faults.events",
            "SUBLEDGER_REJECTED_TOPIC": "faults.rejected",
            "SUBLEDGER_GROUP_PREFIX": "faults",
        }
    )
    k.ensure_topics(config)
    log = tmp_path / "serve.log"
    env = {
        **own_services.env,
        **config.serve_env(),
        "SUBLEDGER_KEY_STORE": s["SUBLEDGER_KEY_STORE"],
        "SUBLEDGER_GATEWAY": "sandbox",
        "SUBLEDGER_LOG_LEVEL": "INFO",
    }
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    base = f"http://127.0.0.1:{port}"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [SUBLEDGER, "serve", "--clock", "manual", "--metrics-port", str(port), "--workers",
             "commands,relay,projections,payments"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    upstream = Upstream(config)
    try:
        pricing = {"model": "flat", "amount": 4900, "tiers": []}
        upstream.send(
            c.DefinePlan(command_id="plan", at=AT, plan_id="pro", name="Pro", currency="USD",
                         pricing=pricing, interval="month", interval_count=1)
        )  # fmt: skip
        for i in range(CUSTOMERS):
            upstream.send(
                c.RegisterCustomer(command_id=f"reg-{i}", at=AT, customer_id=f"cust-{i}",
                                   name=f"C {i}", email=f"c{i}@example.com",
                                   payment_token="tok_visa", country="DE")
            )  # fmt: skip
        with Runtime(config) as rt:  # the plan and the customers first (other partitions)
            upstream.wait_applied(rt.ledger, timeout=90)
        for i in range(10):
            upstream.send(subscribe(i))
        upstream.flush()
        wait_until("the first commands", lambda: applied(config, 10), proc, log, 90)

        # PostgreSQL: kill -9, back 8 seconds later; upstream keeps sending meanwhile
        assert get(f"{base}/readyz")[0] == 200
        own_services.kill_postgres()
        for i in range(10, 20):
            upstream.send(subscribe(i))
        upstream.flush()
        # not ready while PostgreSQL is away, and saying why; alive all the same
        wait_until("/readyz says 503", lambda: get(f"{base}/readyz")[0] == 503, proc, log, 8)
        assert "PostgreSQL" in get(f"{base}/readyz")[1]
        assert get(f"{base}/healthz") == (200, "ok\n")
        time.sleep(6)
        own_services.up()
        wait_until("after PostgreSQL's restart", lambda: applied(config, 20), proc, log, 120)

        # Kafka: kill -9 of the broker, back after a pause; then more commands
        own_services.kill_kafka()
        time.sleep(5)
        own_services.up()
        upstream.close()
        upstream = Upstream(config)
        for i in range(20, 30):
            upstream.send(subscribe(i))
        upstream.flush()
        wait_until("after the broker's restart", lambda: applied(config, 30), proc, log, 180)

        wait_until("every charge settled", lambda: paid(config) == 30, proc, log, 120)
        with Runtime(config) as rt:
            assert wait_caught_up(config, rt.ledger, rt.projections, rt.db, 120)
            counts = events_per_command(rt.ledger)
            for i in range(30):  # each command's effect exactly once
                assert counts.get((f"sub-{i}", "Subscription.Subscribed")) == 1, i
                assert counts.get((f"sub-{i}", "CommandReceipt.Applied")) == 1, i
            invoices = reports.invoices(rt.db)
            numbers = sorted(int(x["number"].removeprefix("INV-")) for x in invoices)
            assert numbers == list(range(1, 31))  # gapless
            head = rt.ledger.recorder.max_notification_id()
            assert reconcile(rt.ledger, rt.db, rt.projections, head=head).differences == []
        assert proc.poll() is None
        text = log.read_text()
        assert "lost PostgreSQL" in text and "lost Kafka" in text, text[-3000:]
        # the reconnects are in the metrics, and all is well again
        wait_until("/readyz says 200", lambda: get(f"{base}/readyz")[0] == 200, proc, log, 60)
        scraped = get(f"{base}/metrics")[1]
        assert metric(scraped, 'subledger_reconnects_total{dependency="postgresql"}') >= 1
        assert metric(scraped, 'subledger_reconnects_total{dependency="kafka"}') >= 1
        assert metric(scraped, 'subledger_commands_total{code="",outcome="applied"}') >= 30
        assert metric(scraped, "subledger_relay_lag_events ") == 0
        status = subprocess.run(
            [SUBLEDGER, "status", "--format", "json"], env=env, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert status.returncode == 0, status.stderr
        state = json.loads(status.stdout)
        assert [row["lag"] for row in state["commands"]] == [0, 0, 0]
        assert sum(row["applied"] for row in state["commands"]) >= 1 + CUSTOMERS + 30
        assert state["relay"]["lag"] == 0 and state["rejected"] == {}
        # the reconnects show in status too: each worker's line, written as it started again
        lines = {w["worker"]: w for w in state["workers"]}
        assert {"commands", "relay", "payments"} <= set(lines)
        assert all(w["state"] == "running" for w in lines.values()), lines
        assert lines["relay"]["reconnects"] >= 1 and "lost" in lines["relay"]["last_reason"]
    finally:
        upstream.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(60)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                raise
    assert code == 0, log.read_text()[-3000:]
