"""Helpers for the Kafka pipeline tests: a config per test, serve in a thread, barriers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from bootstrap import Config, Runtime, serve
from consumers import kafka as k
from consumers.commands import tracking_name
from schemas.codec import CommandCodec, command_key


def make_config(
    services: dict[str, str],
    dbs: Any,
    make_topic: Callable[..., str],
    data_dir: Path,
    **overrides: Any,
) -> Config:
    commands, events, rejected = make_topic("cmd"), make_topic("evt"), make_topic("rej")
    env = {
        "SUBLEDGER_DATA_DIR": str(data_dir),
        "SUBLEDGER_EVENT_STORE": dbs.event_store_url,
        "SUBLEDGER_READ_DB": dbs.read_db_url,
        "SUBLEDGER_KAFKA_BOOTSTRAP": services["kafka_bootstrap"],
        "SUBLEDGER_COMMANDS_TOPIC": commands,
        "SUBLEDGER_EVENTS_TOPIC": events,
        "SUBLEDGER_REJECTED_TOPIC": rejected,
        "SUBLEDGER_GROUP_PREFIX": f"{commands}-g",
    }
    return Config.from_env(env, **overrides)


class Served:
    """`serve` in a background thread, stopped like SIGTERM would."""

    def __init__(self, config: Config, workers: Sequence[str]) -> None:
        self.stop = threading.Event()
        self.code: int | None = None
        k.ensure_topics(config)  # before anyone produces (the broker would auto-create them)

        def run() -> None:
            self.code = serve(
                config, workers, clock="manual", stop=self.stop, install_signals=False
            )

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive()
        assert self.code == 0


class Upstream:
    """Publishes commands and knows, per partition, the last offset it produced."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.codec = CommandCodec()
        self.producer = k.producer(config, client_id="pytest-upstream")
        self.last: dict[int, int] = {}
        self.pending: list[Any] = []

    def send(self, command: Any) -> None:
        self.send_raw(self.codec.encode(command), command_key(command))

    def send_raw(self, value: bytes, key: bytes | None) -> None:
        self.pending.append(self.producer.send(self.config.commands_topic, key=key, value=value))

    def flush(self) -> None:
        self.producer.flush()
        for future in self.pending:
            meta = future.get(timeout=30)
            self.last[meta.partition] = max(self.last.get(meta.partition, -1), meta.offset)
        self.pending.clear()

    def wait_applied(self, ledger: Any, timeout: float = 60.0) -> None:
        """Until the ledger recorded every partition's last produced offset."""
        self.flush()
        deadline = time.monotonic() + timeout
        topic = self.config.commands_topic
        while True:
            stored = {
                p: ledger.recorder.max_tracking_id(tracking_name(topic, p)) for p in self.last
            }
            behind = {p: o for p, o in self.last.items() if stored[p] is None or stored[p] < o}
            if not behind:
                return
            if time.monotonic() > deadline:
                import faulthandler
                import sys

                faulthandler.dump_traceback(sys.stderr, all_threads=True)
                raise AssertionError(f"not applied in {timeout}s: {behind}")
            time.sleep(0.05)

    def publish_in_order(self, ledger: Any, commands: Iterable[Any]) -> None:
        """Keep cause before effect across keys: a barrier whenever the key changes."""
        key = None
        for command in commands:
            if key is not None and command_key(command) != key:
                self.wait_applied(ledger)
            key = command_key(command)
            self.send(command)
        self.wait_applied(ledger)

    def close(self) -> None:
        self.producer.close()


def wait_projected(config: Config, runtime: Runtime, timeout: float = 60.0) -> None:
    from consumers.projector import wait_caught_up

    assert wait_caught_up(config, runtime.ledger, runtime.projections, runtime.db, timeout)


def consume_all(config: Config, topic: str, want: int, timeout: float = 30.0) -> list[Any]:
    from kafka import TopicPartition

    reader = k.consumer(config, None, client_id="pytest-reader")
    try:
        parts = reader.partitions_for_topic(topic) or set()
        reader.assign([TopicPartition(topic, p) for p in parts])
        reader.seek_to_beginning()
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(out) < want and time.monotonic() < deadline:
            for batch in reader.poll(timeout_ms=300).values():
                out.extend(batch)
        return out
    finally:
        reader.close()


def events_per_command(ledger: Any) -> dict[tuple[str, str], int]:
    """How many events of each type (`Subscription.Subscribed`) each command id caused."""
    from collections import Counter

    counts: Counter[tuple[str, str]] = Counter()
    start = 0
    while True:
        batch = ledger.recorder.select_notifications(
            start=start, limit=1000, inclusive_of_start=False
        )
        if not batch:
            return dict(counts)
        for n in batch:
            event = ledger.mapper.to_domain_event(n)
            counts[event.meta.get("command_id", ""), type(event).__qualname__] += 1
        start = batch[-1].id


def group_view(config: Config, group: str) -> tuple[str, list[tuple[str, list[int]]]]:
    """The broker's view of `group`: its state and each member's (client id, partitions)."""
    admin = k.admin(config)
    try:
        described = admin.describe_groups([group])[group]
    finally:
        admin.close()
    members = []
    for member in described["members"]:
        assignment = member.get("member_assignment") or {}
        parts = [
            p for topic in assignment.get("assigned_partitions") or [] for p in topic["partitions"]
        ]
        members.append((member["client_id"], sorted(parts)))
    return described["group_state"], sorted(members)


def wait_stable_group(
    config: Config, group: str, workers: dict[str, Any], timeout: float = 90.0
) -> dict[str, list[int]]:
    """Until the broker reports `group` Stable with exactly these members (by client id),
    each holding partitions, and each in-process worker consumes what the broker gave it.

    `workers` maps a client id to its worker (`.member.sought`), or to None for a member
    in another process. Returns each member's partitions.
    """
    deadline = time.monotonic() + timeout
    while True:
        state, members = group_view(config, group)
        view = dict(members)
        if (
            state == "Stable"
            and len(members) == len(workers)
            and set(view) == set(workers)
            and all(view.values())
            and all(
                worker is None or {tp.partition for tp in worker.member.sought} == set(view[cid])
                for cid, worker in workers.items()
            )
        ):
            return view
        if time.monotonic() > deadline:
            raise AssertionError(
                f"group {group} not stable with {sorted(workers)}: {state} {members}"
            )
        time.sleep(0.2)
