"""`subledger serve`: the Kafka-mode workers, one thread and one set of clients each.

Workers: `commands` (Kafka commands -> ledger), `relay` (event store -> events topic),
`projections` (events topic -> read models, one group per projection) and, with
`--clock wall`, `scheduler` (an AdvanceClock command per minute onto the commands topic).

The command worker's due-work index (BillingSchedule) is its own BillingProjection fed in
process from the event store into a SQLite file under the data dir
(`schedule-<event-store db>.sqlite`, consumers/schedule.py), so `clock advance` never waits
on Kafka lag. Only one process may own that file (flock); a second `serve` on the same data
dir keeps its index in memory, rebuilt from the event store at start.

Nothing here builds a ledger or an adapter: bootstrap.serve hands in `Parts`.
"""

from __future__ import annotations

import gc
import logging
import random
import signal
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from adapters import postgres
from consumers import kafka as k
from consumers.commands import CommandWorker, one_line
from consumers.decoded import SharedDecodes
from consumers.faults import COMMAND_FAULTS_DDL, lost_dependency
from consumers.health import Health, worker_recorder
from consumers.projector import VERSIONS_DDL, ProjectionWorker
from consumers.relay import Relay
from domain.commands import AdvanceClock
from domain.policy import Policy
from projections.base import Projection
from schemas.codec import CommandCodec, command_key

log = logging.getLogger(__name__)

WORKERS = (
    "commands",
    "relay",
    "projections",
    "scheduler",
    "payments",  # charges and refunds after commit (consumers/payments.py)
    "notifications",  # the outbox's dispatcher (consumers/notify.py)
    "webhooks",  # webhook deliveries after commit (consumers/webhooks.py)
)


# What our own workers publish onto the commands topic: (source, commands) they need allowed
OWN_COMMANDS = {
    "scheduler": ("scheduler", ("AdvanceClock",)),
    "payments": ("payments", ("RecordChargeOutcome", "RecordRefundOutcome")),
}


def check_policy(policy: Policy | None, workers: Sequence[str], clock: str) -> str:
    """The first log line; ValueError if the policy forbids what our own workers publish."""
    if policy is None:
        return "no access policy (SUBLEDGER_POLICY unset): every source may issue every command"
    for worker, (source, commands) in OWN_COMMANDS.items():
        if worker not in workers or (worker == "scheduler" and clock != "wall"):
            continue
        refused = [name for name in commands if not policy.allows(source, name)]
        if refused:
            listed = ", ".join(f'"{name}"' for name in refused)
            raise ValueError(
                f"policy {policy.origin} does not let the {worker} worker's source '{source}'"
                f" issue {', '.join(refused)}: add [sources.{source}] commands = [{listed}]"
                f" (or leave {worker} out of --workers)"
            )
    return policy.describe()


def check_gateway(config: Any, workers: Sequence[str]) -> None:
    """On PostgreSQL the payments worker never charges through the sandbox unless told to."""
    if "payments" in workers and not getattr(config, "gateway", None):
        raise ValueError(
            "the payments worker needs SUBLEDGER_GATEWAY: stripe (with"
            " SUBLEDGER_STRIPE_API_KEY), or sandbox to charge nothing real on purpose"
            " (or leave payments out of --workers)"
        )


Body = Callable[[threading.Event], None]


@dataclass(frozen=True)
class Parts:
    """What the workers are made of, built by the composition root (bootstrap.serve)."""

    runtime: Callable[[], Any]  # a fresh runtime (`.ledger`, `.db`), a context manager
    projections: Callable[[], Sequence[Projection]]  # the read models to feed from Kafka
    setup_lock: Callable[[], AbstractContextManager[Any]]  # one process creates tables
    now: Callable[[], datetime]  # the wall clock, for the scheduler
    notifier: Callable[[Any], Any] | None = None  # runtime -> its notifications Dispatcher
    policy: Policy | None = None  # the access policy, read once; None: everything allowed


def clock_command_id(at: datetime) -> str:
    """One id per minute: two schedulers ticking the same minute advance the clock once."""
    return f"clock-{at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M')}"


class Scheduler:
    """Publishes AdvanceClock for the current minute every `every_s` seconds (wall clock)."""

    def __init__(self, config: Any, now: Callable[[], datetime], every_s: float = 60.0) -> None:
        self.config = config
        self.now = now
        self.every_s = every_s
        self.codec = CommandCodec()
        self.producer = k.producer(config, client_id="subledger-scheduler")

    def tick(self, now: datetime | None = None) -> str:
        at = (now or self.now()).replace(second=0, microsecond=0)
        command = AdvanceClock(
            command_id=clock_command_id(at), at=at, actor="scheduler", source="scheduler"
        )
        self.producer.send(
            self.config.commands_topic, key=command_key(command), value=self.codec.encode(command)
        )
        self.producer.flush()
        return command.command_id

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                self.tick()
                stop.wait(self.every_s)
        finally:
            self.producer.close()


# A worker that loses PostgreSQL or Kafka starts again after a pause: capped exponential
# (1 s, 2 s, 4 s, ... 30 s) with jitter, from the first delay again once it ran a minute.
RETRY_FIRST_S = 1.0
RETRY_CAP_S = 30.0
HEALTHY_S = 60.0


def _guard(
    name: str,
    body: Body,
    stop: threading.Event,
    errors: list[BaseException],
    health: Health | None = None,
) -> Callable[[], None]:
    """Run `body` until `stop`; when it fails, log one line, pause and run it again: it
    builds its clients anew and resumes from the positions stored with its work, so what
    was in flight is committed once or redone, never half-applied. Only a BaseException
    that is not an Exception (an interpreter exit) stops the whole process."""

    def target() -> None:
        delay = RETRY_FIRST_S
        while not stop.is_set():
            started = time.monotonic()
            if health is not None:
                health.running(name)
            try:
                body(stop)
                if health is not None:
                    health.stopped(name)
                return
            except Exception as exc:
                if stop.is_set():
                    return
                if time.monotonic() - started > HEALTHY_S:
                    delay = RETRY_FIRST_S
                pause = random.uniform(delay / 2, delay)
                dependency = lost_dependency(exc)
                if dependency is not None:
                    log.warning(
                        "worker %s lost %s (%s); reconnecting in %.1f s",
                        name,
                        dependency,
                        (one_line(str(exc)) or type(exc).__name__)[:300],
                        pause,
                    )
                else:
                    log.exception("worker %s failed; starting it again in %.1f s", name, pause)
                if health is not None:
                    health.backing_off(name, f"lost {dependency}" if dependency else "failed")
                    from consumers.metrics import count_reconnect

                    count_reconnect(dependency)
                delay = min(delay * 2, RETRY_CAP_S)
                stop.wait(pause)
            except BaseException as exc:
                log.exception("worker %s stopped the process", name)
                errors.append(exc)
                stop.set()
                return

    return target


def _commands(config: Any, parts: Parts) -> Body:
    def body(stop: threading.Event) -> None:
        with parts.runtime() as runtime:  # in Kafka mode, with its own due-work index
            CommandWorker(config, runtime.ledger, policy=parts.policy).run(stop)

    return body


def _relay(config: Any, parts: Parts) -> Body:
    def body(stop: threading.Event) -> None:
        with parts.runtime() as runtime:
            Relay(config, runtime.ledger).run(stop)

    return body


def _projection(config: Any, parts: Parts, projection: Projection, decodes: SharedDecodes) -> Body:
    def body(stop: threading.Event) -> None:
        worker = ProjectionWorker(config, projection, setup_lock=parts.setup_lock, decodes=decodes)
        worker.run(stop)

    return body


def prepare(config: Any, parts: Parts) -> None:
    """Create every table once, before the workers start, one process at a time."""
    with parts.runtime() as runtime, parts.setup_lock():
        runtime.db.script([VERSIONS_DDL])
        # a restart tries the stopped commands partitions again (after a fix is deployed)
        postgres.execute(
            config.event_store,
            postgres.RELAY_POSITION_DDL,
            COMMAND_FAULTS_DDL,
            "DELETE FROM subledger_command_faults",
        )


# Python collects its young objects every 700 allocations. A worker allocates some thirty
# per event it decodes and keeps a poll's worth alive until applied, so collections that
# found next to nothing to free took a share of a projection worker's time. Billing alone,
# medians of four in one process: 17,100 events/s at 700, 18,700 at 10,000, 17,000 at
# 50,000 (which lets more garbage wait between collections for no more speed).
GC_YOUNG = 10_000


def fewer_collections() -> None:
    """Collect young objects every `GC_YOUNG` allocations (the older generations as before):
    cycles are still freed, at a fourteenth of the collections."""
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])


def serve(
    config: Any,
    workers: Sequence[str],
    parts: Parts,
    *,
    clock: str = "wall",
    tick_s: float = 60.0,
    stop: threading.Event | None = None,
    install_signals: bool = True,
    metrics_address: tuple[str, int] | None = None,
) -> int:
    """Run the workers until SIGTERM/SIGINT (or `stop`); a worker that fails starts again
    (`_guard`). Returns 0, or 1 if the interpreter itself stopped a worker."""
    known = WORKERS
    unknown = set(workers) - set(known)
    if unknown:
        raise ValueError(f"unknown workers {sorted(unknown)}; known: {', '.join(known)}")
    if config.embedded or not config.kafka_bootstrap:
        raise RuntimeError("serve needs SUBLEDGER_EVENT_STORE and SUBLEDGER_KAFKA_BOOTSTRAP")
    check_gateway(config, workers)  # before anything is created
    fewer_collections()
    log.info("%s", check_policy(parts.policy, workers, clock))  # the first line: who may do what
    stop = stop or threading.Event()
    if install_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    k.ensure_topics(config)
    prepare(config, parts)
    health = Health(record=worker_recorder(config.read_db_url()))
    server = _metrics_server(metrics_address, parts, health) if metrics_address else None
    parts = _counting(parts) if server is not None else parts
    bodies: list[tuple[str, Body]] = []
    if "commands" in workers:
        bodies.append(("commands", _commands(config, parts)))
    if "relay" in workers:
        bodies.append(("relay", _relay(config, parts)))
    if "projections" in workers:
        decodes = SharedDecodes()  # each event decoded once for the five read models
        for projection in parts.projections():
            body = _projection(config, parts, projection, decodes)
            bodies.append((f"projection-{projection.name}", body))
    if clock == "wall" and "scheduler" in workers:
        scheduler = Scheduler(config, parts.now, tick_s)
        bodies.append(("scheduler", scheduler.run))
    if "payments" in workers:

        def payments(stop: threading.Event) -> None:  # charges and refunds, after commit
            from consumers.payments import PaymentsWorker

            with parts.runtime() as runtime:  # its gateway, and the tokens through the vault
                PaymentsWorker(config, runtime.ledger, runtime.ledger.gateway).run(stop)

        bodies.append(("payments", payments))
    if "notifications" in workers:
        if parts.notifier is None:
            raise ValueError("serve --workers notifications: no notifier was configured")
        notifier = parts.notifier

        def notifications(stop: threading.Event) -> None:  # the outbox, fed by its projection
            with parts.runtime() as runtime:
                notifier(runtime).run(stop)

        bodies.append(("notifications", notifications))
    if "webhooks" in workers:

        def webhooks(stop: threading.Event) -> None:  # its own group on the events topic
            from consumers.webhooks import WebhookWorker, dispatcher_for

            with parts.runtime() as runtime:
                WebhookWorker(config, dispatcher_for(runtime, config, now=parts.now)).run(stop)

        bodies.append(("webhooks", webhooks))
    errors: list[BaseException] = []
    threads = [
        threading.Thread(
            target=_guard(name, body, stop, errors, health), name=f"subledger-{name}", daemon=True
        )
        for name, body in bodies
    ]
    for thread in threads:
        thread.start()
    log.info("serving %s (%s)", ", ".join(n for n, _ in bodies), uuid.uuid4().hex[:6])
    while not stop.is_set():
        stop.wait(0.5)
    deadline = time.monotonic() + 30
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.1))
    if server is not None:
        server.shutdown()
    return 1 if errors else 0


def _counting(parts: Parts) -> Parts:
    """The same parts, with each runtime's ledger and dispatcher counting for the metrics."""
    from dataclasses import replace

    from consumers import metrics

    def runtime() -> Any:
        made = parts.runtime()
        made.ledger.on_recorded = metrics.EVENTS_RECORDED.inc
        return made

    def notifier(runtime: Any) -> Any:
        assert parts.notifier is not None
        dispatcher = parts.notifier(runtime)
        dispatcher.on_result = lambda channel, outcome: metrics.NOTIFICATIONS.labels(
            channel=channel, outcome=outcome
        ).inc()
        return dispatcher

    return replace(parts, runtime=runtime, notifier=notifier if parts.notifier else None)


def _metrics_server(address: tuple[str, int], parts: Parts, health: Health) -> Any:
    """/metrics, /healthz and /readyz on `address`; the store gauges from a runtime of the
    server's own, opened again after a failure."""
    from consumers import health as h
    from consumers import metrics

    held: list[Any] = []

    def snapshot() -> dict[str, Any]:
        try:
            if not held:
                held.append(parts.runtime())
            return h.snapshot(held[0], rejected=False)
        except Exception:
            while held:
                with suppress(Exception):
                    held.pop().close()
            raise

    collector = metrics.StoreCollector(snapshot)
    metrics.REGISTRY.register(collector)

    def not_ready() -> list[str]:
        reasons = health.not_ready()
        problem = collector.problem()
        return [*reasons, problem] if problem else reasons

    try:
        server = metrics.start_server(address[0], address[1], metrics.app(not_ready))
    except OSError as exc:
        metrics.REGISTRY.unregister(collector)
        raise ValueError(f"--metrics-port {address[1]} on {address[0]}: {exc.strerror}") from None
    collector.start()
    log.info("metrics on http://%s:%s/metrics (and /healthz, /readyz)", *address)
    return _Server(server, collector, held)


class _Server:
    def __init__(self, server: Any, collector: Any, held: list[Any]) -> None:
        self.server = server
        self.collector = collector
        self.held = held  # the snapshot's runtime, if open

    def shutdown(self) -> None:
        from consumers import metrics

        self.server.shutdown()
        self.server.server_close()
        self.collector.stop()
        metrics.REGISTRY.unregister(self.collector)
        while self.held:
            with suppress(Exception):
                self.held.pop().close()
