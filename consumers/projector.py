"""Kafka-fed projections: one consumer group per projection on the events topic.

A poll's rows, each partition's next offset (projection_positions, source
`<topic>:<partition>`) and each aggregate's last applied version commit in one read-DB
transaction, which PostgreSQL finishes while the next poll is fetched. The relay publishes
at least once, so an event whose version is not above the stored one for its aggregate is
a duplicate and is skipped.

A projection that raises on an event (a bug: the ledger accepted it) stops on that
partition alone: the fault is recorded (`projection_faults`, at the Kafka offset), the
partition stays paused, also after a restart, until `rebuild_from_store` clears it, and
the other partitions go on. A busy or lost read DB is not the event's fault: it raises.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from kafka import TopicPartition

from adapters import postgres
from consumers import kafka as k
from consumers.decoded import SharedDecodes, decode
from consumers.embedded import LogFeeder, one_line
from consumers.relay import relay_position
from projections.analytics import create_views
from projections.base import (
    Projection,
    get_faults,
    get_positions,
    record_fault,
    set_position,
    ts,
)
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
    """Feeds one projection from the events topic into its own read-DB connection.

    `setup_lock` serialises its table creation with other processes' (default: the
    PostgreSQL advisory lock on the event store, bootstrap's too).
    """

    def __init__(
        self,
        config: Any,
        projection: Projection,
        *,
        poll_ms: int = 500,
        max_records: int = 1000,
        setup_lock: Callable[[], AbstractContextManager[Any]] | None = None,
        decodes: SharedDecodes | None = None,
    ) -> None:
        self.config = config
        self.projection = projection
        self.decodes = decodes  # the process's other workers' decoded events (serve's)
        self.topic = config.events_topic
        self.codec = EventCodec(check_types=False)
        self.poll_ms = poll_ms
        self.max_records = max_records
        self.db = ReadDB(config.read_db_url())
        lock = setup_lock() if setup_lock else postgres.setup_lock(config.event_store)
        with lock:
            projection.create(self.db)
            self.db.script([VERSIONS_DDL])
        client_id = f"subledger-projection-{projection.name}"
        self.member = k.GroupMember(
            lambda: k.consumer(config, group_id(config, projection), client_id=client_id),
            self.topic,
            self.seek,
            name=client_id,
        )
        self.applied = 0
        # a poll's batches whose commit was left to the read DB's sender, and how many events
        self._unsettled: tuple[dict[TopicPartition, Sequence[Any]], int] | None = None
        # (partition, offset) -> EventRecord, its DecodeError, or None (dead-lettered, or of no
        # use here) of the batch not yet settled: applied again, nothing is decoded or
        # dead-lettered twice
        self._decoded: dict[tuple[int, int], Any] = {}
        self._wanted: dict[bytes, bool] = {}  # by the event name a message's header gives
        self.dead_letters = k.DeadLetters(config, f"projection-{projection.name}")
        from consumers import metrics  # prometheus_client: for serve's workers only

        self._batch_seconds = metrics.BATCH_SECONDS.labels(worker=f"projection-{projection.name}")

    @property
    def consumer(self) -> Any:
        """The current Kafka consumer (a fresh one after the member had to rejoin)."""
        return self.member.consumer

    def stored(self, partition: int) -> int | None:
        """The next offset to read for `partition`, per the read DB."""
        self.settle()
        return get_positions(self.db, self.projection.name).get(source(self.topic, partition))

    def stuck(self) -> set[str]:
        """The sources (`<topic>:<partition>`) this projection is stuck on."""
        self.settle()
        return {f["source"] for f in get_faults(self.db, self.projection.name)}

    def seek(self, tp: TopicPartition) -> None:
        """From the poll loop, on assignment: to the stored offset, or paused if stuck there."""
        if source(self.topic, tp.partition) in self.stuck():
            self.consumer.pause(tp)  # until a rebuild clears the fault
            log.warning("projection %s stays stopped on %s (rebuild it)", self.projection.name, tp)
            return
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
        batches = self.member.poll(self.poll_ms, self.max_records)
        # decoded while PostgreSQL still works through the poll before's writes
        ahead = {
            (tp.partition, m.offset): self._decode_one(m)
            for tp, messages in batches.items()
            for m in messages
        }
        self.settle()  # the poll before: its commit confirmed, or applied again with care
        self._decoded = ahead
        if not batches:
            return 0
        started = time.monotonic()
        done = self.handle(batches)
        self._batch_seconds.observe(time.monotonic() - started)
        return done

    def handle(self, batches: dict[TopicPartition, Sequence[Any]]) -> int:
        """Apply a poll's batches, in one read-DB transaction; returns messages consumed.

        Optimistically first: every write is pipelined and the commit is left to the read
        DB's sender, so PostgreSQL works through the batches while the next poll is fetched
        and decoded; `settle` confirms it before anything else uses the read DB. Should a
        write fail there, or a handler raise, nothing of it was kept, and each partition's
        batch is applied again with care (`_apply_carefully`), which names the event at
        fault and stops that partition alone.
        """
        paused = self.consumer.paused()  # on a fault, maybe one `settle` found since the poll
        batches = {tp: ms for tp, ms in batches.items() if tp not in paused}
        try:
            return self._apply_fast(batches)
        except Exception as exc:
            if self.db.is_transient(exc):
                raise
            return sum(self._apply_carefully(tp, ms) for tp, ms in batches.items())

    def settle(self) -> None:
        """Wait for the last poll's deferred commit; if a write of it failed, apply each of
        its batches again with care (a busy or lost database raises)."""
        unsettled, self._unsettled = self._unsettled, None
        if unsettled is None:
            return
        batches, applied = unsettled
        try:
            self.db.settle()
        except Exception as exc:
            if self.db.is_transient(exc):
                raise
            for tp, messages in batches.items():
                self._apply_carefully(tp, messages)
            return
        self.applied += applied

    def _apply_fast(self, batches: dict[TopicPartition, Sequence[Any]]) -> int:
        name = self.projection.name
        kept: dict[TopicPartition, Sequence[Any]] = {}
        with self.db.transaction(defer=True):
            for tp in sorted(batches, key=lambda tp: tp.partition):  # locks in one order
                self.db.serialise(f"{name}:{source(self.topic, tp.partition)}")
            positions = get_positions(self.db, name)  # see _apply_carefully
            todo = []
            for tp, messages in batches.items():
                nxt = positions.get(source(self.topic, tp.partition))
                if nxt is not None:
                    messages = [m for m in messages if m.offset >= nxt]
                if messages:
                    kept[tp] = messages
                    todo += self._decode(tp, messages)
            if not kept:
                return 0
            stored = self._versions({r.aggregate_id for _offset, r in todo})
            with self.db.pipelined(wait=False):
                with self.projection.batch(self.db):
                    applied, versions = self._apply(todo, dict(stored), [0])
                write_versions(self.db, name, list(versions.items()))
                for tp, messages in kept.items():
                    set_position(
                        self.db, name, source(self.topic, tp.partition), messages[-1].offset + 1
                    )
        self._unsettled = (kept, applied)
        return sum(len(messages) for messages in kept.values())

    def _apply_carefully(self, tp: TopicPartition, messages: Sequence[Any]) -> int:
        """The batch in one transaction, one statement at a time (returns messages
        consumed).

        A projection that raises on an event is a bug (the ledger accepted that event): the
        events before it are kept, the fault is recorded at its offset, and the partition is
        paused until a rebuild; the other partitions go on. A busy or lost database raises
        and changes nothing (the worker fails loudly).
        """
        name = self.projection.name
        where = source(self.topic, tp.partition)
        fault: dict[str, Any] | None = None
        with self.db.transaction():
            # two members may briefly both hold a partition (a rebalance, a stranded member):
            # the second waits here, then reads the position the first one moved on
            self.db.serialise(f"{name}:{where}")
            nxt = self.stored(tp.partition)
            if nxt is not None:
                messages = [m for m in messages if m.offset >= nxt]
            if not messages:
                return 0
            todo = self._decode(tp, messages)
            stored = self._versions({r.aggregate_id for _offset, r in todo})
            while True:
                done = [0]
                try:
                    with self.db.savepoint():  # only the projection's own writes inside it
                        applied, versions = self._apply(todo, dict(stored), done)
                    break
                except Exception as exc:
                    if self.db.is_transient(exc):
                        raise
                    if done[0] >= len(todo):
                        raise
                    offset, record = todo[done[0]]
                    fault = {"offset": offset, "event": record.name, "reason": one_line(exc)}
                    todo = todo[: done[0]]  # those before it applied fine: keep them
            with self.db.pipelined():  # the duplicate guard and the position, sent at once
                write_versions(self.db, name, list(versions.items()))
                end = fault["offset"] if fault else messages[-1].offset + 1
                set_position(self.db, name, where, end)
                if fault:
                    at = ts(datetime.now(UTC)) or ""
                    offset, event = fault["offset"], fault["event"]
                    record_fault(self.db, name, where, offset, event, fault["reason"], at)
        self.applied += applied
        if fault is None:
            return len(messages)
        self.consumer.pause(tp)
        log.error(
            "projection %s stopped on %s offset %s (%s): %s",
            name,
            where,
            fault["offset"],
            fault["event"],
            fault["reason"],
        )
        return sum(1 for m in messages if m.offset < fault["offset"])

    def _decode(self, tp: TopicPartition, messages: Sequence[Any]) -> list[tuple[int, Any]]:
        """(offset, EventRecord) of each message that decodes; the others go to the
        dead-letter topic (once: only those this batch keeps, none it skips)."""
        records = []
        for m in messages:
            key = (tp.partition, m.offset)
            if key not in self._decoded:
                self._decoded[key] = self._decode_one(m)
            found = self._decoded[key]
            if isinstance(found, DecodeError):  # not ours to judge; never block the partition
                log.error("undecodable event at %s@%s to the dead-letter topic: %s",
                          tp, m.offset, found)  # fmt: skip
                self.dead_letters.send(m, str(found))
                self._decoded[key] = None
            elif found is not None:
                records.append((m.offset, found))
        return records

    def _decode_one(self, m: Any) -> Any:
        """The message's EventRecord, or the DecodeError it raised (nothing sent yet); None,
        undecoded, for an event its header names that this read model has no use for."""
        headers = dict(m.headers or [])
        event = headers.get(t.H_EVENT)
        if event is not None:
            wanted = self._wanted.get(event)
            if wanted is None:
                wanted = self._wanted[event] = self.projection.wants(
                    event.decode("utf-8", "replace")
                )
            if not wanted:
                return None
        notification = headers.get(t.H_NOTIFICATION_ID)
        position = int(notification) if notification else m.offset
        if self.decodes is not None:
            return self.decodes.decode(self.codec, m, position)
        return decode(self.codec, m.value, position)

    def _apply(
        self, todo: list[tuple[int, Any]], versions: dict[str, int], done: list[int]
    ) -> tuple[int, dict[str, int]]:
        """Apply each record not yet applied (by aggregate version); `done[0]` counts the
        records handled so far, so a failure names its record. Returns (applied, versions)."""
        touched: dict[str, int] = {}
        applied = 0
        for _offset, record in todo:
            if record.version > versions.get(record.aggregate_id, 0):  # else a relay duplicate
                self.projection.apply(self.db, record)
                versions[record.aggregate_id] = touched[record.aggregate_id] = record.version
                applied += 1
            done[0] += 1
        return applied, touched

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
            self.settle()  # the last batch: committed, or applied again with care
        except Exception as exc:  # not kept: its events are read again from the stored offset
            log.error("projection %s: the last batch was not kept: %s", self.projection.name, exc)
        try:
            self.member.close()
            self.dead_letters.close()
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
    """The event store's head, the relay's position, each projection's lag, and the
    sources a projection is stuck on ("stuck": projection, source, position, event, reason)."""
    head = ledger.recorder.max_notification_id() or 0
    return {
        "head": head,
        "relay": relay_position(config),
        "partitions": lag(config, projections, db),
        "stuck": [fault for p in projections for fault in get_faults(db, p.name)],
    }


def caught_up(state: dict[str, Any]) -> bool:
    return state["relay"] >= state["head"] and all(r["lag"] == 0 for r in state["partitions"])


def wait_caught_up(
    config: Any, ledger: Any, projections: Sequence[Projection], db: ReadDB, timeout_s: float
) -> bool:
    """Poll `status` until the relay and every projection reached the head, or time out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if caught_up(status(config, ledger, projections, db)):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)


class _Versions(Projection):
    """Each aggregate's last version among the events a rebuild feeds: kept in memory and
    written once at the end, as every rebuilt projection's duplicate guard."""

    tables: dict[str, str] = {}

    def __init__(self, of: Sequence[str]) -> None:
        self.name = f"{'+'.join(of)}#versions"  # its position while the rebuild runs
        self.last: dict[str, int] = {}

    def apply(self, db: ReadDB, record: Any) -> None:
        self.last[record.aggregate_id] = record.version


VERSION_ROWS = 300  # rows of projection_versions per INSERT (3 parameters each)


def write_versions(db: ReadDB, projection: str, rows: Sequence[tuple[str, int]]) -> None:
    """The duplicate guard: each aggregate's last applied version, many rows a statement."""
    for i in range(0, len(rows), VERSION_ROWS):
        chunk = rows[i : i + VERSION_ROWS]
        db.execute(
            "INSERT INTO projection_versions (projection, aggregate_id, version)"
            f" VALUES {','.join(['(?, ?, ?)'] * len(chunk))}"
            " ON CONFLICT (projection, aggregate_id) DO UPDATE"
            " SET version = excluded.version",
            [x for aggregate, version in chunk for x in (projection, aggregate, version)],
        )


def rebuild_from_store(
    config: Any,
    ledger: Any,
    projections: Projection | Sequence[Projection],
    db: ReadDB,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Rebuild Kafka-fed read models from the event store, then hand each back to its group;
    returns how many events were fed (one pass over the store, however many read models).

    The events topic need not keep every event (retention), so the rows come from the store.
    The topic's end offsets are read first: every event published before them is in the
    store, so each group resumes there, and its duplicate guard (each aggregate's version,
    written here) skips whatever it meets again. Stop the projections' workers first.
    """
    many = [projections] if isinstance(projections, Projection) else list(projections)
    ends = k.end_offsets(config, config.events_topic, "subledger-rebuild")
    for projection in many:
        projection.drop(db)  # and the analysts' views, which read its tables
        projection.create(db)
    create_views(db)
    names = [p.name for p in many]
    versions = _Versions(names)
    with db.transaction():
        db.execute(VERSIONS_DDL)
        marks = ",".join("?" * len(names))
        db.execute(f"DELETE FROM projection_versions WHERE projection IN ({marks})", names)
        db.execute("DELETE FROM projection_positions WHERE projection = ?", (versions.name,))
    feeder = LogFeeder(ledger, db, [*many, versions])
    applied = feeder.catch_up(progress)
    faults = feeder.faults()
    rows = list(versions.last.items())
    with db.transaction(), db.pipelined():
        db.execute("DELETE FROM projection_positions WHERE projection = ?", (versions.name,))
        for projection in many:
            write_versions(db, projection.name, rows)
            fault = faults.get(projection.name)
            for tp, end in ends.items():
                where = source(tp.topic, tp.partition)
                set_position(db, projection.name, where, end)
                if fault is not None:  # incomplete: its workers must not resume past the gap
                    record_fault(
                        db,
                        projection.name,
                        where,
                        end,
                        fault["event"],
                        f"rebuild stopped at event {fault['position']}: {fault['reason']}",
                        ts(datetime.now(UTC)) or "",
                    )
    return applied
