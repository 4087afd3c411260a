"""The relay: the event store's notification log, in order, onto the events topic.

At least once: the last published notification id is stored (table
`subledger_relay_position` in the event-store database) only after `producer.flush()`
succeeded, so a crash republishes a tail, which consumers drop by aggregate version.
One relay publishes at a time: it holds a PostgreSQL advisory lock on its own connection
while it works; other `serve` processes wait and take over if it dies (the lock goes with
its connection).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg2

from consumers import kafka as k
from schemas import topics as t
from schemas.codec import EventCodec, event_key
from schemas.records import to_record

log = logging.getLogger(__name__)

LOCK_KEY = 0x5B1ED6E7  # pg advisory lock id: "subledger relay"
POSITION_DDL = (
    "CREATE TABLE IF NOT EXISTS subledger_relay_position ("
    " topic TEXT PRIMARY KEY, notification_id BIGINT NOT NULL)"
)


class RelayPosition:
    """The last notification id published to a topic, on the relay's own connection."""

    def __init__(self, url: str, topic: str) -> None:
        self.topic = topic
        self.conn = psycopg2.connect(url)
        self.conn.autocommit = True
        with self.conn.cursor() as cur:
            cur.execute(POSITION_DDL)

    def get(self) -> int:
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT notification_id FROM subledger_relay_position WHERE topic = %s",
                (self.topic,),
            )
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def set(self, notification_id: int) -> None:
        with self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO subledger_relay_position (topic, notification_id) VALUES (%s, %s)"
                " ON CONFLICT (topic) DO UPDATE SET notification_id = excluded.notification_id",
                (self.topic, notification_id),
            )

    def try_lock(self) -> bool:
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,))
            return bool(cur.fetchone()[0])

    def close(self) -> None:
        self.conn.close()


def relay_position(config: Any) -> int:
    """What the relay has published so far (0 before it ever ran)."""
    position = RelayPosition(config.event_store, config.events_topic)
    try:
        return position.get()
    finally:
        position.close()


class Relay:
    def __init__(
        self, config: Any, ledger: Any, *, batch_size: int = 1000, idle_s: float = 0.2
    ) -> None:
        if not config.event_store:
            raise RuntimeError("the relay needs a PostgreSQL event store (SUBLEDGER_EVENT_STORE)")
        self.config = config
        self.ledger = ledger
        self.topic = config.events_topic
        self.batch_size = batch_size
        self.idle_s = idle_s
        self.codec = EventCodec(check_types=False)
        self.position = RelayPosition(config.event_store, self.topic)
        self.producer = k.producer(config, client_id="subledger-relay")
        self.published = 0

    def publish_once(self) -> int:
        """Publish the next batch after the stored position; returns how many."""
        after = self.position.get()
        notifications = self.ledger.recorder.select_notifications(
            start=after, limit=self.batch_size, inclusive_of_start=False
        )
        if not notifications:
            return 0
        for n in notifications:
            record = to_record(self.ledger.mapper.to_domain_event(n), n.id)
            self.producer.send(
                self.topic,
                key=event_key(record),
                value=self.codec.encode(record),
                headers=[
                    (t.H_NOTIFICATION_ID, str(n.id).encode()),
                    (t.H_EVENT, record.name.encode()),
                ],
            )
        self.producer.flush()
        self.position.set(notifications[-1].id)
        self.published += len(notifications)
        return len(notifications)

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set() and not self.position.try_lock():
                stop.wait(1.0)  # another serve process relays; take over if it goes
            while not stop.is_set():
                if not self.publish_once():
                    stop.wait(self.idle_s)
        finally:
            self.close()

    def close(self) -> None:
        try:
            self.producer.close()
        finally:
            self.position.close()  # releases the advisory lock with the session
