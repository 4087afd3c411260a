"""`subledger serve`: the Kafka-mode workers, one thread and one set of clients each.

Workers: `commands` (Kafka commands -> ledger), `relay` (event store -> events topic),
`projections` (events topic -> read models, one group per projection) and, with
`--clock wall`, `scheduler` (an AdvanceClock command per minute onto the commands topic).

The command worker's due-work index (BillingSchedule) is its own BillingProjection fed in
process from the event store into a SQLite file under the data dir
(`schedule-<event-store db>.sqlite`), so `clock advance` never waits on Kafka lag. Only one
process may own that file (flock); a second `serve` on the same data dir keeps its index in
memory, rebuilt from the event store at start.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from consumers import kafka as k

log = logging.getLogger(__name__)

WORKERS = ("commands", "relay", "projections", "scheduler")


def command_runtime(config: Any) -> tuple[Any, Callable[[], None]]:
    """A Runtime for the command worker (in Kafka mode it has its own due-work index)."""
    from bootstrap import Runtime

    runtime = Runtime(config)
    return runtime, runtime.close


def clock_command_id(at: datetime) -> str:
    return f"clock-{at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M')}"


class Scheduler:
    """Publishes AdvanceClock for the current minute every `every_s` seconds (wall clock)."""

    def __init__(self, config: Any, every_s: float = 60.0) -> None:
        from schemas.codec import CommandCodec

        self.config = config
        self.every_s = every_s
        self.codec = CommandCodec()
        self.producer = k.producer(config, client_id="subledger-scheduler")

    def tick(self, now: datetime | None = None) -> str:
        from domain.commands import AdvanceClock
        from schemas.codec import command_key

        at = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
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


def _guard(
    name: str,
    body: Callable[[threading.Event], None],
    stop: threading.Event,
    errors: list[BaseException],
) -> Callable[[], None]:
    def target() -> None:
        try:
            body(stop)
        except BaseException as exc:  # a dead worker stops the whole process: loud, not silent
            log.exception("worker %s failed", name)
            errors.append(exc)
            stop.set()

    return target


def _commands(config: Any) -> Callable[[threading.Event], None]:
    def body(stop: threading.Event) -> None:
        from consumers.commands import CommandWorker

        runtime, close = command_runtime(config)
        try:
            CommandWorker(config, runtime.ledger).run(stop)
        finally:
            close()

    return body


def _relay(config: Any) -> Callable[[threading.Event], None]:
    def body(stop: threading.Event) -> None:
        from bootstrap import Runtime
        from consumers.relay import Relay

        with Runtime(config) as runtime:
            Relay(config, runtime.ledger).run(stop)

    return body


def _projection(config: Any, projection: Any) -> Callable[[threading.Event], None]:
    def body(stop: threading.Event) -> None:
        from consumers.projector import ProjectionWorker

        ProjectionWorker(config, projection).run(stop)

    return body


def prepare(config: Any) -> None:
    """Create every table once, before the workers start, one process at a time."""
    from bootstrap import Runtime, setup_lock
    from consumers.projector import VERSIONS_DDL
    from consumers.relay import POSITION_DDL

    with Runtime(config) as runtime, setup_lock(config):
        runtime.db.script([VERSIONS_DDL])
        import psycopg2

        conn = psycopg2.connect(config.event_store)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(POSITION_DDL)
        finally:
            conn.close()


def serve(
    config: Any,
    workers: Sequence[str] = ("commands", "relay", "projections"),
    *,
    clock: str = "wall",
    tick_s: float = 60.0,
    stop: threading.Event | None = None,
    install_signals: bool = True,
) -> int:
    """Run the workers until SIGTERM/SIGINT (or `stop`); returns 0, or 1 if one failed."""
    from bootstrap import projections

    unknown = set(workers) - set(WORKERS)
    if unknown:
        raise ValueError(f"unknown workers {sorted(unknown)}; known: {', '.join(WORKERS)}")
    if config.embedded or not config.kafka_bootstrap:
        raise RuntimeError("serve needs SUBLEDGER_EVENT_STORE and SUBLEDGER_KAFKA_BOOTSTRAP")
    stop = stop or threading.Event()
    if install_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    k.ensure_topics(config)
    prepare(config)
    bodies: list[tuple[str, Callable[[threading.Event], None]]] = []
    if "commands" in workers:
        bodies.append(("commands", _commands(config)))
    if "relay" in workers:
        bodies.append(("relay", _relay(config)))
    if "projections" in workers:
        for projection in projections():
            bodies.append((f"projection-{projection.name}", _projection(config, projection)))
    if clock == "wall" and "scheduler" in workers:
        scheduler = Scheduler(config, tick_s)
        bodies.append(("scheduler", scheduler.run))
    errors: list[BaseException] = []
    threads = [
        threading.Thread(
            target=_guard(name, body, stop, errors), name=f"subledger-{name}", daemon=True
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
    return 1 if errors else 0
