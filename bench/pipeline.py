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

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2

from bootstrap import Config, Runtime
from consumers import kafka as k
from consumers.commands import tracking_name
from consumers.projector import wait_caught_up
from domain import commands as c
from schemas.codec import CommandCodec, command_key

AT = datetime(2025, 3, 1, tzinfo=UTC)
CUSTOMERS = 100


def config_env(config: Config) -> dict[str, str]:
    """The SUBLEDGER_* settings that make a `subledger serve` subprocess use `config`."""
    return {
        "SUBLEDGER_DATA_DIR": str(config.data_dir),
        "SUBLEDGER_EVENT_STORE": config.event_store or "",
        "SUBLEDGER_READ_DB": config.read_db or "",
        "SUBLEDGER_KAFKA_BOOTSTRAP": config.kafka_bootstrap or "",
        "SUBLEDGER_COMMANDS_TOPIC": config.commands_topic,
        "SUBLEDGER_EVENTS_TOPIC": config.events_topic,
        "SUBLEDGER_REJECTED_TOPIC": config.rejected_topic,
        "SUBLEDGER_GROUP_PREFIX": config.group_prefix,
    }


class Upstream:
    """Publishes commands and waits until the ledger recorded the last offset of each
    partition it produced to (the command worker stores offsets with the events)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.codec = CommandCodec()
        self.producer = k.producer(config, client_id="bench-upstream")
        self.last: dict[int, int] = {}
        self.pending: list[Any] = []

    def send(self, command: c.Command) -> None:
        value = self.codec.encode(command)
        topic = self.config.commands_topic
        self.pending.append(self.producer.send(topic, key=command_key(command), value=value))

    def wait_applied(self, ledger: Any, timeout: float = 60.0) -> None:
        self.producer.flush()
        for future in self.pending:
            meta = future.get(timeout=30)
            self.last[meta.partition] = max(self.last.get(meta.partition, -1), meta.offset)
        self.pending.clear()
        topic, deadline = self.config.commands_topic, time.monotonic() + timeout
        while any(self._behind(ledger, topic, p, offset) for p, offset in self.last.items()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"commands not applied within {timeout} s")
            time.sleep(0.05)

    @staticmethod
    def _behind(ledger: Any, topic: str, partition: int, offset: int) -> bool:
        stored = ledger.recorder.max_tracking_id(tracking_name(topic, partition))
        return stored is None or stored < offset

    def close(self) -> None:
        self.producer.close()


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


CREATED: list[str] = []


def databases(admin, tag: str) -> tuple[str, str]:
    base = os.environ["SUBLEDGER_EVENT_STORE"].rsplit("/", 1)[0]
    for name in (f"bench_ev_{tag}", f"bench_rd_{tag}"):
        admin.cursor().execute(f"CREATE DATABASE {name}")
        CREATED.append(name)
    return f"{base}/bench_ev_{tag}", f"{base}/bench_rd_{tag}"


def ceiling(admin, n: int) -> float:
    tag = uuid.uuid4().hex[:6]
    events, read = databases(admin, tag)
    config = Config.from_env(
        event_store=events, read_db=read, kafka_bootstrap="", data_dir=Path(f"/tmp/bench-{tag}")
    )
    with Runtime(config) as runtime:
        runtime.ledger.execute_batch(setup_commands("c"))
        work = subscribes("c", n)
        began = time.monotonic()
        for i in range(0, n, 500):
            runtime.ledger.execute_batch(work[i : i + 500])
        return n / (time.monotonic() - began)


def pipeline(admin, n: int) -> float:
    tag = uuid.uuid4().hex[:6]
    events, read = databases(admin, tag)
    config = Config.from_env(
        event_store=events,
        read_db=read,
        commands_topic=f"bench-c-{tag}",
        events_topic=f"bench-e-{tag}",
        rejected_topic=f"bench-r-{tag}",
        group_prefix=f"bench-{tag}",
        data_dir=Path(f"/tmp/bench-{tag}"),
    )
    k.ensure_topics(config)
    env = {**os.environ, **config_env(config), "SUBLEDGER_LOG_LEVEL": "WARNING"}
    serve = [str(Path(sys.executable).with_name("subledger")), "serve", "--clock", "manual"]
    procs = [  # one process per kind of worker: they scale out, and share no GIL
        subprocess.Popen([*serve, "--workers", workers], env=env)
        for workers in ("commands", "relay", "projections")
    ]
    upstream, runtime = Upstream(config), Runtime(config)
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
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(60)
        upstream.close()
        runtime.close()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    admin = psycopg2.connect(os.environ["SUBLEDGER_EVENT_STORE"].rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    try:
        top = ceiling(admin, n)
        through = pipeline(admin, n)
    finally:
        for name in CREATED:
            admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    print(f"ledger ceiling (execute_batch on PostgreSQL): {top:.0f} commands/s")
    print(f"whole pipeline (Kafka -> ledger -> relay -> read models): {through:.0f} commands/s")
    print(f"pipeline / ceiling: {through / top:.2f}")


if __name__ == "__main__":
    main()
