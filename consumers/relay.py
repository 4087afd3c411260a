"""The relay: the event store's notification log, in order, onto the events topic.

At least once: the last published notification id is stored (table
`subledger_relay_position` in the event-store database) only after `producer.flush()`
succeeded, so a crash republishes a tail, which consumers drop by aggregate version.
One relay publishes at a time: it holds a PostgreSQL advisory lock on its own connection
while it works; other `serve` processes wait and take over if it dies (the lock goes with
its connection: adapters.postgres.RelayPosition).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from adapters.postgres import RelayPosition
from consumers import kafka as k
from schemas import topics as t
from schemas.codec import EventCodec, event_key
from schemas.records import to_record

log = logging.getLogger(__name__)


def relay_position(config: Any) -> int:
    """What the relay has published so far (0 before it ever ran)."""
    position = RelayPosition(config.event_store, config.events_topic)
    try:
        return position.get()
    finally:
        position.close()


class Relay:
    """Publishes the event store's notifications, in order and at least once, to Kafka."""

    def __init__(
        self, config: Any, ledger: Any, *, batch_size: int = 1000, idle_s: float = 0.05
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
            from consumers import metrics  # prometheus_client: for serve's workers only

            while not stop.is_set():
                started = time.monotonic()
                if not self.publish_once():
                    stop.wait(self.idle_s)
                    continue
                metrics.BATCH_SECONDS.labels(worker="relay").observe(time.monotonic() - started)
        finally:
            self.close()

    def close(self) -> None:
        try:
            self.producer.close()
        finally:
            self.position.close()  # releases the advisory lock with the session
