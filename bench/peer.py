"""The peer a Kafka-fed projection is compared with: eventsourcing's own ProjectionRunner
feeding a materialised view (one upsert per event, with its tracking record in the same
transaction) straight from the ledger's PostgreSQL store."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import unquote, urlparse

from eventsourcing.application import Application
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.projection import Projection, ProjectionRunner
from psycopg.sql import SQL


class LedgerStore(Application[Any]):
    """The ledger's stored events, read by a plain eventsourcing application."""

    name = "Ledger"


class PeerView(PostgresTrackingRecorder):
    """Each aggregate's latest version and event type: one row written per event."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS bench_peer_aggregates (aggregate_id text PRIMARY KEY,"
                " version bigint NOT NULL, topic text NOT NULL)"
            )
        )
        self.upsert = SQL(
            "INSERT INTO bench_peer_aggregates VALUES (%s, %s, %s) ON CONFLICT (aggregate_id)"
            " DO UPDATE SET version = excluded.version, topic = excluded.topic"
        )

    def record(self, event: Any, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            row = (str(event.originator_id), event.originator_version, type(event).__qualname__)
            curs.execute(self.upsert, row, prepare=True)
            self._insert_tracking(curs, tracking)


class PeerProjection(Projection[PeerView]):
    name = "peer"

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:  # type: ignore[override]
        self.view.record(domain_event, tracking)


def _pg(prefix: str, url: str) -> dict[str, str]:
    u = urlparse(url)
    return {
        f"{prefix}POSTGRES_DBNAME": u.path.lstrip("/"),
        f"{prefix}POSTGRES_HOST": u.hostname or "127.0.0.1",
        f"{prefix}POSTGRES_PORT": str(u.port or 5432),
        f"{prefix}POSTGRES_USER": unquote(u.username or ""),
        f"{prefix}POSTGRES_PASSWORD": unquote(u.password or ""),
    }


def peer_rate(config: Any, head: int, timeout: float = 1200) -> float:
    """Events/s of the peer view caught up with the ledger's `head` notification."""
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "CREATE_TABLE": "y",
        **_pg("", config.event_store),
        **_pg("PEER_", config.read_db),
    }
    began = time.monotonic()
    with ProjectionRunner(
        application_class=LedgerStore,
        projection_class=PeerProjection,
        view_class=PeerView,
        env=env,
    ) as runner:
        runner.wait(head, timeout=timeout)
        return head / (time.monotonic() - began)
