"""Kafka-fed projections: one consumer group per projection on the events topic.

A batch's rows, the partition's next offset (projection_positions, source
`<topic>:<partition>`) and each aggregate's last applied version commit in one read-DB
transaction. The relay publishes at least once, so an event whose version is not above
the stored one for its aggregate is a duplicate and is skipped.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from kafka import TopicPartition

from consumers import kafka as k
from projections.base import Projection, get_positions, set_position
from projections.db import ReadDB
from schemas import topics as t
from schemas.codec import DecodeError, EventCodec

log = logging.getLogger(__name__)

VERSIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS projection_versions ("
    " projection TEXT NOT NULL, aggregate_id TEXT NOT NULL, version BIGINT NOT NULL,"
    " PRIMARY KEY (projection, aggregate_id))"
)


def source(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


def group_id(config: Any, projection: Projection) -> str:
    return f"{config.group_prefix}-projection-{projection.name}"


class ProjectionWorker:
    """Feeds one projection from the events topic into its own read-DB connection."""

    def __init__(
        self, config: Any, projection: Projection, *, poll_ms: int = 500, max_records: int = 1000
    ) -> None:
        self.config = config
        self.projection = projection
        self.topic = config.events_topic
        self.codec = EventCodec(check_types=False)
        self.poll_ms = poll_ms
        self.max_records = max_records
        from bootstrap import setup_lock

        self.db = ReadDB(config.read_db_url())
        with setup_lock(config):
            projection.create(self.db)
            self.db.script([VERSIONS_DDL])
        self.consumer = k.consumer(
            config,
            group_id(config, projection),
            client_id=f"subledger-projection-{projection.name}",
        )
        k.wait_for_partitions(self.consumer, self.topic)
        self.consumer.subscribe([self.topic], listener=k.SeekOnAssign(self.seek))
        self.applied = 0

    def stored(self, partition: int) -> int | None:
        """The next offset to read for `partition`, per the read DB."""
        return get_positions(self.db, self.projection.name).get(source(self.topic, partition))

    def seek(self, tp: TopicPartition) -> None:
        offset = self.stored(tp.partition)
        if offset is None:
            self.consumer.seek_to_beginning(tp)
        else:
            self.consumer.seek(tp, offset)

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                self.poll_once()
        finally:
            self.close()

    def poll_once(self) -> int:
        batches = self.consumer.poll(timeout_ms=self.poll_ms, max_records=self.max_records)
        return sum(self.handle(tp, messages) for tp, messages in batches.items())

    def handle(self, tp: TopicPartition, messages: Sequence[Any]) -> int:
        name = self.projection.name
        with self.db.transaction():
            nxt = self.stored(tp.partition)
            if nxt is not None:
                messages = [m for m in messages if m.offset >= nxt]
            if not messages:
                return 0
            records = []
            for m in messages:
                try:
                    record = self.codec.decode(m.value)
                except DecodeError as exc:  # not ours to judge; never block the partition
                    log.error("skipping undecodable event at %s@%s: %s", tp, m.offset, exc)
                    continue
                notification = dict(m.headers or []).get(t.H_NOTIFICATION_ID)
                records.append(
                    dataclasses.replace(
                        record, position=int(notification) if notification else m.offset
                    )
                )
            versions = self._versions({r.aggregate_id for r in records})
            applied = 0
            for record in records:
                if record.version <= versions.get(record.aggregate_id, 0):
                    continue  # a duplicate from the relay
                self.projection.apply(self.db, record)
                versions[record.aggregate_id] = record.version
                applied += 1
            touched = {r.aggregate_id for r in records}
            self.db.executemany(
                "INSERT INTO projection_versions (projection, aggregate_id, version)"
                " VALUES (?, ?, ?) ON CONFLICT (projection, aggregate_id)"
                " DO UPDATE SET version = excluded.version",
                [(name, a, versions[a]) for a in touched if a in versions],
            )
            set_position(self.db, name, source(self.topic, tp.partition), messages[-1].offset + 1)
        self.applied += applied
        return len(messages)

    def _versions(self, aggregate_ids: set[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        ids = sorted(aggregate_ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.query(
                "SELECT aggregate_id, version FROM projection_versions"
                f" WHERE projection = ? AND aggregate_id IN ({marks})",
                (self.projection.name, *chunk),
            )
            found.update({row["aggregate_id"]: int(row["version"]) for row in rows})
        return found

    def close(self) -> None:
        try:
            self.consumer.close(autocommit=False)
        finally:
            self.db.close()


def lag(config: Any, projections: Sequence[Projection], db: ReadDB) -> list[dict[str, Any]]:
    """Per projection and partition: the end offset, the stored next offset, the lag."""
    ends = k.end_offsets(config, config.events_topic, "subledger-status")
    tps = list(ends)
    rows = []
    for projection in projections:
        stored = get_positions(db, projection.name)
        for tp in tps:
            at = stored.get(source(tp.topic, tp.partition), 0)
            rows.append(
                {
                    "projection": projection.name,
                    "partition": tp.partition,
                    "end": ends[tp],
                    "position": at,
                    "lag": max(ends[tp] - at, 0),
                }
            )
    return rows


def status(
    config: Any, ledger: Any, projections: Sequence[Projection], db: ReadDB
) -> dict[str, Any]:
    """The event store's head, the relay's position, and each projection's lag."""
    from consumers.relay import relay_position

    head = ledger.recorder.max_notification_id() or 0
    return {
        "head": head,
        "relay": relay_position(config),
        "partitions": lag(config, projections, db),
    }


def caught_up(state: dict[str, Any]) -> bool:
    return state["relay"] >= state["head"] and all(r["lag"] == 0 for r in state["partitions"])


def wait_caught_up(
    config: Any, ledger: Any, projections: Sequence[Projection], db: ReadDB, timeout_s: float
) -> bool:
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        if caught_up(status(config, ledger, projections, db)):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)


class _Versions(Projection):
    """Notes each aggregate's last version as another projection's duplicate guard."""

    tables: dict[str, str] = {}

    def __init__(self, of: str) -> None:
        self.of = of
        self.name = f"{of}#versions"

    def apply(self, db: ReadDB, record: Any) -> None:
        db.execute(
            "INSERT INTO projection_versions (projection, aggregate_id, version) VALUES (?, ?, ?)"
            " ON CONFLICT (projection, aggregate_id) DO UPDATE SET version = excluded.version",
            (self.of, record.aggregate_id, record.version),
        )


def rebuild_from_store(
    config: Any,
    ledger: Any,
    projection: Projection,
    db: ReadDB,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Rebuild a Kafka-fed read model from the event store, then hand it back to its group.

    The events topic need not keep every event (retention), so the rows come from the store.
    The topic's end offsets are read first: every event published before them is in the
    store, so the group resumes there, and its duplicate guard (each aggregate's version,
    written here) skips whatever it meets again. Stop the projection's workers first.
    """
    from consumers.embedded import LogFeeder

    ends = k.end_offsets(config, config.events_topic, "subledger-rebuild")
    versions = _Versions(projection.name)
    projection.drop(db)
    projection.create(db)
    with db.transaction():
        db.execute(VERSIONS_DDL)
        db.execute("DELETE FROM projection_versions WHERE projection = ?", (projection.name,))
        db.execute("DELETE FROM projection_positions WHERE projection = ?", (versions.name,))
    applied = LogFeeder(ledger, db, [projection, versions]).catch_up(progress)
    with db.transaction():
        db.execute("DELETE FROM projection_positions WHERE projection = ?", (versions.name,))
        for tp, end in ends.items():
            set_position(db, projection.name, source(tp.topic, tp.partition), end)
    return applied
