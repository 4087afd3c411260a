"""The ceilings each figure is measured against, in the same run and on the same services:
what eventsourcing, kafka-python and fastavro do alone, with nothing of ours in between.
Each is the best of batch sizes 100, 500 and 1,000, so no ratio gains from a weak one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate

BATCHES = (100, 500, 1000)


def best(measure: Callable[[int], float]) -> float:
    """The highest rate `measure(batch)` reports over the batch sizes."""
    return max(measure(batch) for batch in BATCHES)


class _Inserts(Application[Any]):
    """A bare eventsourcing application: saves one-event aggregates, nothing else."""

    name = "BenchCeiling"


def _insert_rate(env: dict[str, str], events: int, batch: int) -> float:
    app = _Inserts(env)
    try:
        began = time.monotonic()
        done = 0
        while done < events:
            n = min(batch, events - done)
            app.save(*[Aggregate() for _ in range(n)])
            done += n
        return events / (time.monotonic() - began)
    finally:
        app.close()


def postgres_insert(databases: Any, events: int) -> float:
    """Events/s of `Application.save` of one-event aggregates on a fresh PostgreSQL database."""

    def measure(batch: int) -> float:
        url = urlparse(databases.create(f"bench_ceil_{uuid.uuid4().hex[:8]}"))
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": url.path.lstrip("/"),
            "POSTGRES_HOST": url.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(url.port or 5432),
            "POSTGRES_USER": unquote(url.username or ""),
            "POSTGRES_PASSWORD": unquote(url.password or ""),
            "CREATE_TABLE": "y",
        }
        return _insert_rate(env, events, batch)

    return best(measure)


def sqlite_insert(folder: Path, events: int) -> float:
    """Events/s of `Application.save` of one-event aggregates on a fresh SQLite file."""

    def measure(batch: int) -> float:
        path = folder / f"ceiling-{uuid.uuid4().hex[:8]}.sqlite"
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
        try:
            return _insert_rate(env, events, batch)
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

    return best(measure)


def kafka_decode(config: Any) -> tuple[float, int]:
    """Messages/s of a bare kafka-python consumer reading the events topic from the start
    and decoding each message with fastavro (the project's schema); and how many."""
    from kafka import TopicPartition

    from consumers import kafka as k
    from schemas.codec import EventCodec

    codec = EventCodec(check_types=False)
    found = [0]

    def measure(batch: int) -> float:
        client = k.consumer(config, None, client_id="bench-ceiling", max_poll_records=batch)
        try:
            parts = client.partitions_for_topic(config.events_topic) or set()
            tps = [TopicPartition(config.events_topic, p) for p in sorted(parts)]
            client.assign(tps)
            ends = client.end_offsets(tps)
            total = sum(ends.values())
            client.seek_to_beginning(*tps)
            began, seen = time.monotonic(), 0
            while seen < total:
                for messages in client.poll(500, max_records=batch).values():
                    for m in messages:
                        codec.decode(m.value)
                    seen += len(messages)
            found[0] = total
            return total / (time.monotonic() - began)
        finally:
            client.close()

    return best(measure), found[0]


def store_decode(ledger: Any) -> float:
    """Events/s of reading every stored event back, page by page, and decoding each into
    its domain event (eventsourcing's recorder and mapper, nothing of ours)."""
    head = ledger.recorder.max_notification_id() or 0

    def measure(batch: int) -> float:
        began, start, seen = time.monotonic(), 1, 0
        while start <= head:
            page = ledger.recorder.select_notifications(start=start, limit=batch)
            if not page:
                break
            for notification in page:
                ledger.mapper.to_domain_event(notification)
            seen += len(page)
            start = page[-1].id + 1
        return seen / (time.monotonic() - began)

    return best(measure)
