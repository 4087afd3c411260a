"""What the benchmarks share: fresh databases and topics per run, `subledger serve`
subprocesses on them, an upstream that publishes commands and waits for the ledger, and a
realistic mix of commands.

Imported by bench/run.py and bench/pipeline.py as a sibling module (`import harness`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2

from bootstrap import Config
from consumers import kafka as k
from consumers.commands import tracking_name
from domain import commands as c
from schemas.codec import CommandCodec, command_key

AT = datetime(2025, 3, 1, tzinfo=UTC)
SUBLEDGER = str(Path(sys.executable).with_name("subledger"))


class Databases:
    """Creates PostgreSQL databases on the services' server, and drops every one at the end."""

    def __init__(self) -> None:
        self.base = os.environ["SUBLEDGER_EVENT_STORE"].rsplit("/", 1)[0]
        self.admin = psycopg2.connect(f"{self.base}/postgres")
        self.admin.autocommit = True
        self.created: list[str] = []

    def create(self, name: str) -> str:
        self.admin.cursor().execute(f"CREATE DATABASE {name}")
        self.created.append(name)
        return f"{self.base}/{name}"

    def config(self, kafka: bool = True, **overrides: Any) -> Config:
        """A config on a fresh event store, read DB, data dir and (with Kafka) topics."""
        tag = uuid.uuid4().hex[:8]
        settings: dict[str, Any] = {
            "event_store": self.create(f"bench_ev_{tag}"),
            "read_db": self.create(f"bench_rd_{tag}"),
            "data_dir": Path(f"/tmp/bench-{tag}"),
            "commands_topic": f"bench-c-{tag}",
            "events_topic": f"bench-e-{tag}",
            "rejected_topic": f"bench-r-{tag}",
            "group_prefix": f"bench-{tag}",
        }
        if not kafka:
            settings["kafka_bootstrap"] = ""
        settings.update(overrides)
        return Config.from_env(**settings)

    def close(self) -> None:
        for name in self.created:  # an event store's key store is `<its name>_keys`
            for db in (name, f"{name}_keys"):
                self.admin.cursor().execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        self.created.clear()
        self.admin.close()


def create_commands_topic(config: Config, partitions: int) -> None:
    """The commands topic with `partitions` partitions (ensure_topics makes the rest)."""
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=config.kafka_bootstrap, client_id="bench-admin")
    try:
        admin.create_topics([NewTopic(config.commands_topic, partitions, 1)])
    finally:
        admin.close()
    k.ensure_topics(config)


def delete_topics(config: Config) -> None:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=config.kafka_bootstrap, client_id="bench-admin")
    try:
        existing = set(admin.list_topics())
        names = {config.commands_topic, config.events_topic, config.rejected_topic}
        names |= {t for t in existing if t.startswith(config.commands_topic.replace("-c-", "-"))}
        if gone := sorted(names & existing):
            admin.delete_topics(gone)
    except Exception:  # best effort: a topic left behind costs disk, not correctness
        pass
    finally:
        admin.close()


class Serve:
    """`subledger serve` subprocesses on `config` (one per entry of `kinds`), stopped on exit."""

    def __init__(
        self, config: Config, kinds: Iterable[str], wrap: dict[str, list[str]] | None = None
    ) -> None:
        """`wrap[kind]` goes before that kind's command line (a profiler, say)."""
        env = {**os.environ, **config.serve_env(), "SUBLEDGER_LOG_LEVEL": "WARNING"}
        cmd = [SUBLEDGER, "serve", "--clock", "manual"]
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.log = open(config.data_dir / "serve.log", "ab")  # noqa: SIM115 (closed in stop)
        self.procs = [
            subprocess.Popen(
                [*(wrap or {}).get(kind, []), *cmd, "--workers", kind],
                env=env,
                stdout=self.log,
                stderr=self.log,
            )
            for kind in kinds
        ]

    def __enter__(self) -> Serve:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.log.close()


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a live process, in MB (psutil is not a dependency)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


class Upstream:
    """Publishes commands and waits until the ledger recorded the last offset of each
    partition it produced to (the command worker stores offsets with the events)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.codec = CommandCodec()
        self.producer = k.producer(config, client_id="bench-upstream")
        self.last: dict[int, int] = {}
        self.pending: list[Any] = []

    def send(self, command: c.Command) -> Any:
        value = self.codec.encode(command)
        topic = self.config.commands_topic
        future = self.producer.send(topic, key=command_key(command), value=value)
        self.pending.append(future)
        return future

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


class Mix:
    """A realistic book's commands in phases that may each be sent at once: the plans; the
    registrations and subscriptions; plan changes and cancellations; then a clock advance
    a month on, renewing every subscription.

    Phases matter on several partitions: a command may not overtake the plan it names, and
    the clock advance must see every subscription."""

    def __init__(self, prefix: str, customers: int, start: datetime = AT) -> None:
        self.prefix, self.customers, self.start = prefix, customers, start

    def _id(self, what: str) -> str:
        return f"{self.prefix}-{what}"

    def plans(self) -> list[c.Command]:
        return [
            c.DefinePlan(
                command_id=self._id(f"plan-{plan}"),
                at=self.start,
                plan_id=plan,
                name=plan.title(),
                currency="USD",
                pricing={"model": "flat", "amount": amount, "tiers": []},
            )
            for plan, amount in (("basic", 1900), ("pro", 4900))
        ]

    def signups(self) -> list[c.Command]:
        """Each customer registers and subscribes (to basic or pro), at the start."""
        out: list[c.Command] = []
        for i in range(self.customers):
            cid = f"cust-{i}"
            out.append(
                c.RegisterCustomer(
                    command_id=self._id(f"reg-{i}"),
                    at=self.start,
                    customer_id=cid,
                    name=f"Customer {i}",
                    email=f"c{i}@example.com",
                    payment_token="tok_visa",
                    country="DE" if i % 3 == 0 else "US",
                )
            )
            out.append(
                c.Subscribe(
                    command_id=self._id(f"sub-{i}"),
                    at=self.start,
                    subscription_id=f"sub-{i}",
                    customer_id=cid,
                    plan_id="basic" if i % 2 else "pro",
                )
            )
        return out

    def changes(self) -> list[c.Command]:
        """Ten days on: every 4th customer upgrades (prorated), every 10th cancels at period
        end (after the signups: a change may not come before the time already billed)."""
        at, out = self.start + timedelta(days=10), []
        for i in range(self.customers):
            cid, sid = f"cust-{i}", f"sub-{i}"
            if i % 4 == 1:
                out.append(
                    c.ChangePlan(
                        command_id=self._id(f"chg-{i}"),
                        at=at,
                        subscription_id=sid,
                        plan_id="pro",
                        customer_id=cid,
                    )
                )
            if i % 10 == 3:
                out.append(
                    c.Cancel(
                        command_id=self._id(f"cxl-{i}"), at=at, subscription_id=sid, customer_id=cid
                    )
                )
        return out

    def book(self) -> list[c.Command]:
        return [*self.signups(), *self.changes()]

    def advance(self, months: int = 1) -> c.AdvanceClock:
        to = self.start + timedelta(days=31 * months)
        return c.AdvanceClock(command_id=self._id(f"clock-{months}"), at=to)

    def count(self) -> int:
        return len(self.plans()) + len(self.book()) + 1
