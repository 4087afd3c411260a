"""A fault soak: a real `subledger serve` under a stream of upstream commands while faults
are injected, trial after trial, on a PostgreSQL and a Kafka of its own.

    .venv/bin/python bench/faults.py [--trials N] [--seed S]

It starts `ops/services` in a state dir and on ports of its own (never the development
services), and per trial: fresh databases and topics, a `serve` with every worker but the
scheduler, upstream sending `Subscribe` commands every 40 ms, and one fault in the middle
of the stream, in turn:

- `postgres`: kill -9 of the postmaster, back 8 s later;
- `kafka`: kill -9 of the broker, back 5 s later;
- `freeze`: SIGSTOP of `serve` past its consumers' session timeout, then SIGCONT;
- `kill9`: kill -9 of `serve` at a random point, then a new `serve`;
- `poison`: bytes that are not a command on the commands topic and not an event on the
  events topic.

After each trial it checks: every accepted command's effect exactly once, invoice numbers
gapless and in time order, every charge settled, the read models equal to a rebuild, the
poison on the rejected and dead-letter topics. It prints trials, faults injected,
commands, lost and doubled; exit 1 if any check failed.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OPS = ROOT / "ops" / "services"
SUBLEDGER = str(Path(sys.executable).with_name("subledger"))
AT = datetime(2025, 3, 1, tzinfo=UTC)
CUSTOMERS = 12
FAULTS = ("postgres", "kafka", "freeze", "kill9", "poison")


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class OwnServices:
    """ops/services with its own state dir and ports: `up`, `down`, and kill -9 of each."""

    def __init__(self, state: Path) -> None:
        pg, kafka, controller, sasl = free_ports(4)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")},
            "SUBLEDGER_SERVICES_DIR": str(state),
            "SUBLEDGER_PG_PORT": str(pg),
            "SUBLEDGER_KAFKA_PORT": str(kafka),
            "SUBLEDGER_KAFKA_CONTROLLER_PORT": str(controller),
            "SUBLEDGER_KAFKA_SASL_PORT": str(sasl),
        }
        if os.environ.get("SUBLEDGER_CACHE_DIR"):  # the Kafka jars already fetched
            self.env["SUBLEDGER_CACHE_DIR"] = os.environ["SUBLEDGER_CACHE_DIR"]
        self.state = state
        self.settings: dict[str, str] = {}

    def run(self, *args: str) -> str:
        proc = subprocess.run(
            [str(OPS), *args], env=self.env, capture_output=True, text=True, timeout=600,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"ops/services {' '.join(args)}:\n{proc.stdout}{proc.stderr}")
        return proc.stdout

    def up(self) -> None:
        self.run("up")
        for line in self.run("env").splitlines():
            match = re.fullmatch(r"export (\w+)=(.*)", line.strip())
            if match:
                self.settings[match.group(1)] = shlex.split(match.group(2))[0]

    def down(self) -> None:
        """Stop both and delete their data (a PostgreSQL moved out of reach goes too)."""
        subprocess.run([str(OPS), "reset"], env=self.env, capture_output=True, timeout=300)

    def _pid(self, path: Path) -> int:
        return int(path.read_text().split()[0])

    def kill_postgres(self) -> None:
        # as root, ops/services may keep the cluster where the postgres user can reach it
        moved = self.state / "postgres.location"
        base = Path(moved.read_text().strip()) if moved.exists() else self.state / "postgres"
        os.kill(self._pid(base / "data" / "postmaster.pid"), signal.SIGKILL)

    def kill_kafka(self) -> None:
        os.kill(self._pid(self.state / "kafka" / "kafka.pid"), signal.SIGKILL)

    def database(self, name: str) -> str:
        """A fresh database on this PostgreSQL (dropped first if a trial left it)."""
        import psycopg2

        base = self.settings["SUBLEDGER_EVENT_STORE"].rsplit("/", 1)[0]
        admin = psycopg2.connect(f"{base}/postgres")
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            cur.execute(f"CREATE DATABASE {name}")
        admin.close()
        return f"{base}/{name}"


class Trial:
    """One trial: its own databases, topics and `serve`; upstream streams while a fault hits."""

    def __init__(self, services: OwnServices, number: int, fault: str, workdir: Path) -> None:
        from bootstrap import Config

        self.services, self.fault = services, fault
        tag = f"t{number}_{os.getpid()}"
        s = services.settings
        self.env_settings = {
            "SUBLEDGER_DATA_DIR": str(workdir / tag),
            "SUBLEDGER_EVENT_STORE": services.database(f"soak_ev_{tag}"),
            "SUBLEDGER_READ_DB": services.database(f"soak_rd_{tag}"),
            "SUBLEDGER_KEY_STORE": s["SUBLEDGER_KEY_STORE"],
            "SUBLEDGER_KAFKA_BOOTSTRAP": s["SUBLEDGER_KAFKA_BOOTSTRAP"],
            "SUBLEDGER_COMMANDS_TOPIC": f"soak.{tag}.commands",
            "SUBLEDGER_EVENTS_TOPIC": f"soak.{tag}.events",
            "SUBLEDGER_REJECTED_TOPIC": f"soak.{tag}.rejected",
            "SUBLEDGER_GROUP_PREFIX": f"soak-{tag}",
            "SUBLEDGER_GATEWAY": "sandbox",
        }
        self.config = Config.from_env(self.env_settings)
        self.log = workdir / f"{tag}.log"
        self.sent: list[str] = []
        self.proc: subprocess.Popen | None = None

    def start_serve(self) -> None:
        env = {**self.services.env, **self.env_settings, "SUBLEDGER_LOG_LEVEL": "WARNING"}
        workers = "commands,relay,projections,payments,notifications"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [SUBLEDGER, "serve", "--clock", "manual", "--workers", workers],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def stop_serve(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def run(self, rng: random.Random, commands: int) -> dict[str, Any]:
        from consumers import kafka as k

        k.ensure_topics(self.config)
        self.start_serve()
        try:
            self._setup()
            stream = threading.Thread(target=self._stream, args=(commands,), daemon=True)
            stream.start()
            time.sleep(rng.uniform(0.5, 2.0))
            self._inject(rng)
            stream.join(600)
            return self._check(commands)
        finally:
            self.stop_serve()

    def _producer(self) -> Any:
        from consumers import kafka as k

        return k.producer(self.config, client_id="soak-upstream", retries=2**31 - 1)

    def _setup(self) -> None:
        from bootstrap import Runtime
        from domain import commands as c
        from schemas.codec import CommandCodec, command_key

        codec, producer = CommandCodec(), self._producer()
        pricing = {"model": "flat", "amount": 4900, "tiers": []}
        setup: list[Any] = [
            c.DefinePlan(command_id="plan", at=AT, plan_id="pro", name="Pro", currency="USD",
                         pricing=pricing, interval="month", interval_count=1)
        ]  # fmt: skip
        setup += [
            c.RegisterCustomer(command_id=f"reg-{i}", at=AT, customer_id=f"cust-{i}",
                               name=f"C {i}", email=f"c{i}@example.com",
                               payment_token="tok_visa", country="DE")
            for i in range(CUSTOMERS)
        ]  # fmt: skip
        for command in setup:
            topic = self.config.commands_topic
            producer.send(topic, key=command_key(command), value=codec.encode(command))
        producer.flush()
        producer.close()
        from domain.catalog.plan import Plan
        from domain.customer import Customer
        from domain.identity import customer_uuid, plan_uuid

        deadline = time.monotonic() + 120
        last = customer_uuid(f"cust-{CUSTOMERS - 1}")
        with Runtime(self.config) as rt:
            while (
                rt.ledger.get(Customer, last) is None
                or rt.ledger.get(Plan, plan_uuid("pro")) is None
            ):
                if time.monotonic() > deadline:
                    raise TimeoutError("the plan and the customers were not applied")
                time.sleep(0.2)

    def _stream(self, commands: int) -> None:
        """Upstream: a Subscribe every 40 ms; the producer retries through a broker restart."""
        from domain import commands as c
        from schemas.codec import CommandCodec, command_key

        codec, producer = CommandCodec(), self._producer()
        for i in range(commands):
            command = c.Subscribe(command_id=f"sub-{i}", at=AT, subscription_id=f"s-{i}",
                                  customer_id=f"cust-{i % CUSTOMERS}", plan_id="pro")  # fmt: skip
            producer.send(
                self.config.commands_topic, key=command_key(command), value=codec.encode(command)
            )
            self.sent.append(command.command_id)
            time.sleep(0.04)
        producer.flush(timeout=300)
        producer.close()

    def _inject(self, rng: random.Random) -> None:
        assert self.proc is not None
        if self.fault == "postgres":
            self.services.kill_postgres()
            time.sleep(8)
            self.services.up()
        elif self.fault == "kafka":
            self.services.kill_kafka()
            time.sleep(5)
            self.services.up()
        elif self.fault == "freeze":
            self.proc.send_signal(signal.SIGSTOP)
            time.sleep(16)  # kafka-python's session timeout is 10 s
            self.proc.send_signal(signal.SIGCONT)
        elif self.fault == "kill9":
            time.sleep(rng.uniform(0, 1.5))
            self.proc.kill()
            self.proc.wait(30)
            self.start_serve()
        elif self.fault == "poison":
            producer = self._producer()
            producer.send(self.config.commands_topic, key=b"cust-1", value=b"not a command")
            headers = [("subledger.event", b"Subscription.ChargeRequested")]
            producer.send(
                self.config.events_topic, key=b"x", value=b"\x00not an event", headers=headers
            )
            producer.flush()
            producer.close()

    def _check(self, commands: int) -> dict[str, Any]:
        from bootstrap import Runtime
        from consumers.projector import wait_caught_up
        from projections import reports

        deadline = time.monotonic() + 300
        with Runtime(self.config) as rt:
            while True:
                counts = _per_command(rt.ledger)
                applied = sum(1 for i in range(commands) if (f"sub-{i}", "Subscribed") in counts)
                paid = sum(n for (_cmd, event), n in counts.items() if event == "PaymentSucceeded")
                if (applied, paid) == (commands, commands) or time.monotonic() > deadline:
                    break
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"serve exited: see {self.log}")
                time.sleep(0.5)
            caught_up = wait_caught_up(self.config, rt.ledger, rt.projections, rt.db, 120)
            lost = [i for i in range(commands) if (f"sub-{i}", "Subscribed") not in counts]
            doubled = [i for i in range(commands) if counts.get((f"sub-{i}", "Subscribed"), 0) > 1]
            invoices = sorted(reports.invoices(rt.db), key=lambda x: x["number"])
            numbers = [int(x["number"].removeprefix("INV-")) for x in invoices]
            gapless = numbers == list(range(1, len(numbers) + 1)) and len(numbers) == commands
            in_order = [x["issued_at"] for x in invoices] == sorted(
                x["issued_at"] for x in invoices
            )
            differences = self._reconcile(rt)
        problems = []
        if lost or doubled:
            problems.append(f"lost {len(lost)}, doubled {len(doubled)}")
        if paid != commands:
            problems.append(f"{paid} of {commands} charges settled")
        if not (caught_up and gapless and in_order):
            problems.append(f"caught up {caught_up}, gapless {gapless}, in order {in_order}")
        if differences:
            problems.append(f"{len(differences)} read-model differences, e.g. {differences[0]}")
        if self.fault == "poison":
            problems += self._poison_landed()
        return {"commands": commands, "lost": len(lost), "doubled": len(doubled),
                "problems": problems}  # fmt: skip

    def _reconcile(self, rt: Any) -> list[Any]:
        """The read models against a rebuild, once the workers are quiet: the notifications
        worker may still be recording a delivery the projectors have not read yet."""
        from consumers.projector import wait_caught_up
        from projections.reconcile import reconcile

        deadline = time.monotonic() + 60
        while True:
            wait_caught_up(self.config, rt.ledger, rt.projections, rt.db, 30)
            head = rt.ledger.recorder.max_notification_id()
            differences = reconcile(rt.ledger, rt.db, rt.projections, head=head).differences
            if not differences or time.monotonic() > deadline:
                return differences
            time.sleep(1)

    def _poison_landed(self) -> list[str]:
        from consumers import kafka as k

        rejected = k.end_offsets(self.config, self.config.rejected_topic, "soak-check")
        dead = k.end_offsets(self.config, k.dead_letter_topic(self.config), "soak-check")
        problems = []
        if sum(rejected.values()) < 1:
            problems.append("the poisoned command is not on the rejected topic")
        if sum(dead.values()) < 1:
            problems.append("the poisoned event is not on the dead-letter topic")
        return problems


def _per_command(ledger: Any) -> Counter[tuple[str, str]]:
    """How many events of each type (`Subscribed`) each command id caused."""
    counts: Counter[tuple[str, str]] = Counter()
    start = 0
    while batch := ledger.recorder.select_notifications(
        start=start, limit=1000, inclusive_of_start=False
    ):
        for n in batch:
            event = ledger.mapper.to_domain_event(n)
            counts[event.meta.get("command_id", ""), type(event).__name__] += 1
        start = batch[-1].id
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5, help="trials (faults in turn)")
    parser.add_argument("--commands", type=int, default=60, help="commands per trial")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    state = Path(tempfile.mkdtemp(prefix="subledger-soak-"))
    state.chmod(0o755)  # PostgreSQL's own user (when run as root) reaches its data here
    services = OwnServices(state / "services")
    injected: Counter[str] = Counter()
    totals = Counter(commands=0, lost=0, doubled=0)
    failed = 0
    try:
        services.up()
        for number in range(args.trials):
            fault = FAULTS[number % len(FAULTS)]
            started = time.monotonic()
            try:
                result = Trial(services, number, fault, state).run(rng, args.commands)
            except Exception as exc:  # a trial that could not finish is a failed trial
                result = {"commands": args.commands, "lost": 0, "doubled": 0,
                          "problems": [f"{type(exc).__name__}: {exc}"]}  # fmt: skip
            injected[fault] += 1
            for key in ("commands", "lost", "doubled"):
                totals[key] += result[key]
            verdict = "ok" if not result["problems"] else "FAILED: " + "; ".join(result["problems"])
            failed += bool(result["problems"])
            print(f"trial {number + 1}/{args.trials} {fault:<8} {time.monotonic() - started:5.1f} s"
                  f"  {verdict}", flush=True)  # fmt: skip
    finally:
        services.down()
        shutil.rmtree(state, ignore_errors=True)
    faults = ", ".join(f"{name} {n}" for name, n in sorted(injected.items()))
    print(
        f"trials {args.trials}, faults injected {sum(injected.values())} ({faults}),"
        f" commands {totals['commands']}, lost {totals['lost']}, doubled {totals['doubled']},"
        f" failed trials {failed}"
    )
    return 1 if failed or totals["lost"] or totals["doubled"] else 0


if __name__ == "__main__":
    sys.exit(main())
