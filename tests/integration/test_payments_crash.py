"""kill -9 of `serve --workers payments` at random points: never two charges for one attempt.

The payments worker runs as a real subprocess and is killed with SIGKILL several times while
it charges a burst of signups and then their retries; it is restarted each time. The sandbox
gateway keeps its charges in a SQLite file under the data dir, as a real gateway keeps them
(a repeated key is answered with the first answer, and counted): after the last restart,
every attempt the ledger asked for was charged exactly once, under its own key, and has
exactly one outcome in the book.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline_support import Served, Upstream, make_config

from bootstrap import Runtime
from domain import commands as c

SUBLEDGER = str(Path(sys.executable).with_name("subledger"))
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
SIGNUPS = 60
SEED = int(os.environ.get("SUBLEDGER_CRASH_SEED", "0")) or random.randrange(1, 10**6)


def start_payments(config: Any, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        **config.serve_env(),
        "SUBLEDGER_GATEWAY": "sandbox",
        "SUBLEDGER_LOG_LEVEL": "WARNING",
    }
    with open(log, "ab") as out:
        return subprocess.Popen(
            [SUBLEDGER, "serve", "--workers", "payments", "--clock", "manual"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def charged(gateway_file: Path) -> dict[str, tuple[str, int, int]]:
    """The sandbox's charges: key -> (reference, succeeded, calls)."""
    if not gateway_file.exists():
        return {}
    db = sqlite3.connect(gateway_file, timeout=30)
    try:
        rows = db.execute("SELECT idempotency_key, reference, succeeded, calls FROM charges")
        return {key: (ref, ok, calls) for key, ref, ok, calls in rows}
    except sqlite3.OperationalError:  # the table is not there yet
        return {}
    finally:
        db.close()


def book_events(ledger: Any) -> list[Any]:
    out, start = [], 0
    while batch := ledger.recorder.select_notifications(
        start=start, limit=1000, inclusive_of_start=False
    ):
        out.extend(ledger.mapper.to_domain_event(n) for n in batch)
        start = batch[-1].id
    return out


def requests_and_outcomes(ledger: Any) -> tuple[dict[str, Any], Counter]:
    requests: dict[str, Any] = {}
    outcomes: Counter = Counter()
    for e in book_events(ledger):
        name = type(e).__name__
        if name == "ChargeRequested":
            requests[e.idempotency_key] = e
        elif name in ("PaymentSucceeded", "PaymentFailed"):
            outcomes[f"{e.number}:{e.attempt}", name, e.reference] += 1
    return requests, outcomes


def settled(ledger: Any) -> bool:
    requests, outcomes = requests_and_outcomes(ledger)
    done = {key for key, _name, _ref in outcomes}
    return bool(requests) and set(requests) <= done


def kill_at_random_points(
    config: Any, log: Path, gateway_file: Path, rng: random.Random, goal: int, kills: int
) -> subprocess.Popen:
    """Start the worker, kill -9 it `kills` times at random points, return the last one."""
    before = len(charged(gateway_file))
    marks = [*sorted(rng.sample(range(before, goal), kills - 1)), None]
    proc = start_payments(config, log)
    for mark in marks:
        deadline = time.monotonic() + 90
        if mark is None:  # one kill at a random moment, whatever it is doing then
            time.sleep(rng.uniform(0.0, 3.0))
        else:
            while len(charged(gateway_file)) < mark:
                assert proc.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, f"never reached {mark} charges"
                time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc = start_payments(config, log)
    return proc


def test_kill_9_of_the_payments_worker_never_charges_an_attempt_twice(
    services, pg_database_pair, make_topic, tmp_path
) -> None:
    rng = random.Random(SEED)
    print(f"SUBLEDGER_CRASH_SEED={SEED}")
    config = make_config(services, pg_database_pair, make_topic, tmp_path / "data")
    config = config.with_overrides(gateway="sandbox")
    gateway_file = config.data_dir / "gateway.sqlite"
    log = tmp_path / "payments.log"
    served = Served(config, ["commands", "relay"])
    upstream = Upstream(config)
    runtime = Runtime(config)
    proc = None
    tokens = ["tok_visa"] * 3 + ["tok_chargeDeclined", "tok_chargeDeclinedExpiredCard"]
    try:
        common = {"actor": "pytest", "source": "pytest"}
        upstream.send(
            c.DefinePlan(command_id="plan", at=T0, plan_id="basic", name="Basic",
                         currency="USD", pricing={"model": "flat", "amount": 900, "tiers": []},
                         **common)
        )  # fmt: skip
        upstream.wait_applied(runtime.ledger)
        for i in range(SIGNUPS):
            upstream.send(
                c.RegisterCustomer(command_id=f"reg-{i}", at=T0, customer_id=f"cus-{i}",
                                   name=f"C {i}", email=f"c{i}@example.com",
                                   payment_token=tokens[i % len(tokens)], **common)
            )  # fmt: skip
            upstream.send(
                c.Subscribe(command_id=f"sub-{i}", at=T0, customer_id=f"cus-{i}",
                            plan_id="basic", subscription_id=f"s-{i}", **common)
            )  # fmt: skip
        upstream.wait_applied(runtime.ledger, timeout=120)

        proc = kill_at_random_points(config, log, gateway_file, rng, SIGNUPS, kills=3)
        deadline = time.monotonic() + 120
        while not settled(runtime.ledger):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the signups' charges were never all settled"
            time.sleep(0.2)

        # the declined ones are retried a day later: kill the worker among those charges too
        # (killed, idle, before they are asked for: a live one may settle them all first)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        upstream.send(c.AdvanceClock(command_id="tick", at=T0 + timedelta(days=1), **common))
        upstream.wait_applied(runtime.ledger)
        requests, _ = requests_and_outcomes(runtime.ledger)
        assert len(requests) > SIGNUPS  # the retries were asked for
        assert len(charged(gateway_file)) < len(requests)  # and none charged yet
        proc = kill_at_random_points(config, log, gateway_file, rng, len(requests), kills=2)
        deadline = time.monotonic() + 120
        while not settled(runtime.ledger) or len(charged(gateway_file)) < len(requests):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the retries' charges were never all settled"
            time.sleep(0.2)

        requests, outcomes = requests_and_outcomes(runtime.ledger)
        gateway = charged(gateway_file)
        # every attempt asked for was charged, under its own key; nothing else was charged
        assert set(gateway) == set(requests)
        assert all(r.idempotency_key == f"{r.number}:{r.attempt}" for r in requests.values())
        # and has exactly one outcome in the book, the gateway's own answer
        per_attempt = Counter(key for key, _name, _ref in outcomes)
        assert per_attempt == Counter(set(requests)), [k for k, n in per_attempt.items() if n > 1]
        for key, name, reference in outcomes:
            ref, ok, _calls = gateway[key]
            assert (reference, name == "PaymentSucceeded") == (ref, bool(ok)), key
        receipts = Counter(
            e.meta.get("command_id")
            for e in book_events(runtime.ledger)
            if type(e).__name__ == "Applied" and e.command == "RecordChargeOutcome"
        )
        assert receipts == Counter({f"charge:{key}": 1 for key in requests})
        asked_again = sum(1 for _ref, _ok, calls in gateway.values() if calls > 1)
        print(f"{len(gateway)} charges; {asked_again} keys asked more than once, charged once")
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        served.close()
        upstream.close()
        runtime.close()
