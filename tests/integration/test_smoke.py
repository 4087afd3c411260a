"""Smoke tests: the real Kafka broker and PostgreSQL from ops/services do what the project needs."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

import psycopg2
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from kafka import KafkaConsumer, KafkaProducer, TopicPartition


def _poll_until(consumer: KafkaConsumer, want: int, timeout: float = 30.0) -> list:
    """Poll until `want` records arrived or `timeout` seconds passed."""
    records: list = []
    deadline = time.monotonic() + timeout
    while len(records) < want and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    return records


def test_kafka_consumer_group_respects_committed_offsets(
    services: dict[str, str], create_topic: Callable[..., str], topic: str
) -> None:
    bootstrap = services["kafka_bootstrap"]
    create_topic(topic, partitions=3)
    values = [f"event-{i}".encode() for i in range(5)]

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        sent = [
            producer.send(topic, key=b"k%d" % i, value=v, partition=i % 3).get(timeout=30)
            for i, v in enumerate(values)
        ]
    finally:
        producer.close()
    assert [(m.partition, m.offset) for m in sent] == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1)]

    group = f"{topic}-group"
    partitions = [TopicPartition(topic, p) for p in range(3)]
    expected_committed = {partitions[0]: 2, partitions[1]: 2, partitions[2]: 1}

    first = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        records = _poll_until(first, want=5)
        assert sorted(r.value for r in records) == values
        assert len(records) == 5, "no duplicates"
        first.commit()
        assert {tp: first.committed(tp) for tp in partitions} == expected_committed
    finally:
        first.close(autocommit=False)

    second = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        # Join the group (assignment of all 3 partitions), then keep polling a little while.
        leftovers = []
        deadline = time.monotonic() + 30
        while len(second.assignment()) < 3 and time.monotonic() < deadline:
            leftovers.extend(r for b in second.poll(timeout_ms=500).values() for r in b)
        assert second.assignment() == set(partitions)
        leftovers.extend(_poll_until(second, want=1, timeout=2))
        assert leftovers == [], "second consumer re-read committed messages"
        # It resumed at the committed offsets, not at 'earliest'.
        assert {tp: second.position(tp) for tp in partitions} == expected_committed
        assert {tp: second.committed(tp) for tp in partitions} == expected_committed
    finally:
        second.close(autocommit=False)


def test_psycopg2_writes_and_reads_in_a_fresh_database(pg_database: str) -> None:
    dbname = urlsplit(pg_database).path.lstrip("/")
    conn = psycopg2.connect(pg_database)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT current_database(), current_user")
            assert cur.fetchone() == (dbname, "subledger")
            cur.execute("CREATE TABLE ledger_line (id serial PRIMARY KEY, amount_cents bigint)")
            cur.executemany(
                "INSERT INTO ledger_line (amount_cents) VALUES (%s)", [(1999,), (-500,), (42,)]
            )
        with conn, conn.cursor() as cur:
            cur.execute("SELECT amount_cents FROM ledger_line ORDER BY id")
            assert [row[0] for row in cur.fetchall()] == [1999, -500, 42]
            cur.execute("SELECT sum(amount_cents) FROM ledger_line")
            assert cur.fetchone() == (1541,)
    finally:
        conn.close()


class SmokeAccount(Aggregate):
    """A tiny aggregate, only for proving PostgreSQL persistence."""

    @event("Opened")
    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.entries: list[int] = []

    @event("Credited")
    def credit(self, amount_cents: int) -> None:
        self.entries.append(amount_cents)


class SmokeLedger(Application):
    """Stores its events in table `smokeledger_events`."""


def _eventsourcing_env(url: str) -> dict[str, str]:
    """eventsourcing.postgres settings for a postgresql:// URL."""
    parts = urlsplit(url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/"),
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or ""),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "CREATE_TABLE": "y",
    }


def test_eventsourcing_postgres_round_trip(pg_database: str) -> None:
    env = _eventsourcing_env(pg_database)

    writer = SmokeLedger(env=env)
    try:
        account = SmokeAccount(owner="alice")
        account.credit(1999)
        account.credit(-500)
        writer.save(account)
    finally:
        writer.close()

    reader = SmokeLedger(env=env)
    try:
        copy = reader.repository.get(account.id)
        assert (copy.owner, copy.entries, copy.version) == ("alice", [1999, -500], 3)
        notifications = reader.recorder.select_notifications(start=1, limit=10)
        assert [n.topic.rsplit(".", 1)[-1] for n in notifications] == [
            "Opened",
            "Credited",
            "Credited",
        ]
    finally:
        reader.close()

    conn = psycopg2.connect(pg_database)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM smokeledger_events")
            assert cur.fetchone() == (3,)
    finally:
        conn.close()
