"""Kafka clients built from Config, in one place: every worker gets its own (not thread-safe).

kafka-python's producer defaults to idempotence with acks=all; we say so explicitly so a
later default change cannot weaken the relay's or the rejections' guarantees.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

for _message in ("read_text is deprecated", "open_text is deprecated"):
    warnings.filterwarnings("ignore", message=_message, category=DeprecationWarning)

from kafka import (  # noqa: E402
    ConsumerRebalanceListener,
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    TopicPartition,
)
from kafka.errors import TopicAlreadyExistsError  # noqa: E402

# Short enough that a killed worker's partitions move on within seconds, long enough for CI.
SESSION_TIMEOUT_MS = 10_000
HEARTBEAT_MS = 2_000


def _bootstrap(config: Any) -> str:
    if not config.kafka_bootstrap:
        raise RuntimeError("SUBLEDGER_KAFKA_BOOTSTRAP is not set: there is no Kafka to talk to")
    return config.kafka_bootstrap


def producer(config: Any, client_id: str = "subledger", **overrides: Any) -> KafkaProducer:
    settings: dict[str, Any] = {
        "bootstrap_servers": _bootstrap(config),
        "client_id": client_id,
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 5,
    }
    settings.update(overrides)
    return KafkaProducer(**settings)


def consumer(
    config: Any, group_id: str | None, client_id: str = "subledger", **overrides: Any
) -> KafkaConsumer:
    """A consumer that never auto-commits: positions live with the data they produced."""
    settings: dict[str, Any] = {
        "bootstrap_servers": _bootstrap(config),
        "client_id": client_id,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "max_poll_records": 500,
    }
    if group_id is not None:
        settings.update(session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=HEARTBEAT_MS)
    settings.update(overrides)
    return KafkaConsumer(**settings)


def wait_for_partitions(client: KafkaConsumer, topic: str, timeout_s: float = 30.0) -> None:
    """Load the topic's metadata before joining a group: a leader that has none assigns
    nothing ("No partition metadata") and the group sits idle until the next refresh."""
    import time

    deadline = time.monotonic() + timeout_s
    while not client.partitions_for_topic(topic):
        if time.monotonic() > deadline:
            raise RuntimeError(f"topic {topic} has no partitions (does it exist?)")
        time.sleep(0.2)


def end_offsets(config: Any, topic: str, client_id: str) -> dict[TopicPartition, int]:
    """Where each partition of `topic` ends now (empty if the topic has none)."""
    client = consumer(config, None, client_id=client_id)
    try:
        parts = client.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        return client.end_offsets(tps) if tps else {}
    finally:
        client.close()


def admin(config: Any) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=_bootstrap(config), client_id="subledger-admin")


def ensure_topics(config: Any) -> None:
    """Create the commands/events (3 partitions) and rejected (1) topics when missing."""
    wanted = {config.commands_topic: 3, config.events_topic: 3, config.rejected_topic: 1}
    client = admin(config)
    try:
        existing = set(client.list_topics())
        missing = {
            name: {"num_partitions": n, "replication_factor": 1}
            for name, n in wanted.items()
            if name not in existing
        }
        if missing:
            try:
                client.create_topics(missing, wait_for_metadata=True)
            except TopicAlreadyExistsError:  # another serve process won the race
                client.wait_for_topics(list(missing))
    finally:
        client.close()


class SeekOnAssign(ConsumerRebalanceListener):
    """On every assignment, seek each partition to where our own store says we stopped."""

    def __init__(self, seek: Callable[[TopicPartition], None]) -> None:
        self.seek = seek

    def on_partitions_revoked(self, revoked: Any) -> None:
        """Nothing to hand over: positions live with the data they produced."""

    def on_partitions_assigned(self, assigned: Any) -> None:
        for tp in assigned:
            self.seek(tp)
