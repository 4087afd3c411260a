"""kill -9 of the notifications dispatcher at random points: no message is acknowledged twice.

The book is made in process (many customers, so many emails wait); then `subledger
notifications deliver` runs against a real SMTP server and is killed with SIGKILL at random
moments, again and again, and finally left to finish. Every email must then be `Sent` exactly
once in the event store, every one must have reached the server, and any that reached it
twice must have been claimed twice (a claim that ran out while its sender was dead: the same
Message-ID again, which the design allows) and never after its `Sent`.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from notify_support import Inbox, SMTPServer

from bootstrap import Config, Runtime
from domain import commands as c
from domain.notifications import delivery_uuid

SUBLEDGER = str(Path(sys.executable).with_name("subledger"))
T0 = datetime(2025, 1, 1, tzinfo=UTC)
CUSTOMERS = 30


class SlowInbox(Inbox):
    """Takes a moment over each message, so a kill often lands mid-send."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.03)
        return await super().handle_DATA(server, session, envelope)


def make_book(data_dir: Path) -> None:
    """Customers with a subscription each: a welcome and a receipt to email to each."""
    with Runtime(Config(data_dir=data_dir)) as rt:
        run = rt.ledger.execute_batch
        n = iter(range(10**6))

        def cmd(cls: type[c.Command], **fields: Any) -> c.Command:
            return cls(command_id=f"setup-{next(n)}", at=T0, actor="t", source="t", **fields)

        run([cmd(c.DefinePlan, plan_id="basic", name="Basic", currency="USD",
                 pricing={"model": "flat", "amount": 1000, "tiers": []})])  # fmt: skip
        run(
            [
                cmd(
                    c.RegisterCustomer,
                    customer_id=f"cus{i:03d}",
                    name=f"Customer {i}",
                    email=f"c{i}@example.com",
                    payment_token="tok_visa",
                )
                for i in range(CUSTOMERS)
            ]
        )
        run(
            [
                cmd(
                    c.Subscribe,
                    customer_id=f"cus{i:03d}",
                    plan_id="basic",
                    subscription_id=f"sub{i:03d}",
                )
                for i in range(CUSTOMERS)
            ]
        )
        rt.catch_up()


def deliver(data_dir: Path, smtp: SMTPServer) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    env.update(SUBLEDGER_SMTP_URL=smtp.url, SUBLEDGER_SMTP_FROM="billing@example.com",
               SUBLEDGER_NOTIFY_LEASE="1")  # fmt: skip
    return subprocess.Popen(
        [SUBLEDGER, "--data-dir", str(data_dir), "notifications", "deliver", "--format", "json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )


def test_kill_9_of_the_dispatcher_never_acknowledges_a_message_twice(tmp_path: Path) -> None:
    data_dir = tmp_path / "book"
    make_book(data_dir)
    rng = random.Random(9)
    smtp = SMTPServer()
    smtp.inbox = SlowInbox()
    smtp.controller.handler = smtp.inbox
    killed = 0
    with smtp:
        for _ in range(12):
            proc = deliver(data_dir, smtp)
            time.sleep(rng.uniform(0.4, 2.5))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                killed += 1
            proc.wait(timeout=60)
            time.sleep(1.1)  # let what the killed one had claimed run out
        final = deliver(data_dir, smtp)
        _, err = final.communicate(timeout=300)
        assert final.returncode == 0, err
        received = Counter(smtp.inbox.ids())
    assert killed >= 3  # the test means something only if kills landed mid-run

    with Runtime(Config(data_dir=data_dir)) as rt:
        rt.catch_up()
        emails = rt.db.query("SELECT message_id, status FROM notifications WHERE channel = ?",
                             ("email",))  # fmt: skip
        assert len(emails) == 2 * CUSTOMERS
        assert {r["status"] for r in emails} == {"sent"}
        assert set(received) == {f"<{r['message_id']}@example.com>" for r in emails}
        for row in emails:
            steps = [type(e).__name__ for e in rt.ledger.history(delivery_uuid(row["message_id"]))]
            assert steps.count("Sent") == 1, steps  # acknowledged once
            assert steps[-1] == "Sent", steps  # no claim, hence no send, after it
            times = received[f"<{row['message_id']}@example.com>"]
            assert steps.count("Claimed") >= times, (steps, times)  # every send was claimed
