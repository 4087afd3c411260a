"""The webhooks read model: endpoints and the delivery log, from the webhook events only.

Rows follow the recorded decisions and attempts (WebhookEndpoints and WebhookDelivery
events), never the ledger events the deliveries carry: so dropping and rebuilding this
model gives the same log and sends nothing. A delivery of a removed endpoint that was
still open shows as `canceled` (it is never tried again).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from domain.webhooks.delivery import FAILED, PENDING, SENT
from projections.base import Projection, ts
from projections.db import ReadDB
from projections.reports import where
from projections.statuses import listed, marks
from schemas.records import EventRecord

ACTIVE, REMOVED = "active", "removed"  # webhook_endpoints.status
CANCELED = "canceled"  # a delivery still open when its endpoint was removed (query time)
OPEN = (PENDING, FAILED)
# the open deliveries, in the words of the sender's poll and of its partial index (written
# out, not bound: a partial index serves a query whose terms are its very own)
OPEN_TERM = f"status IN ({listed(OPEN)})"

ENDPOINT_COLUMNS = (
    "endpoint_id",
    "url",
    "event_types",
    "include_personal_data",
    "status",
    "added_at",
    "removed_at",
)
DELIVERY_COLUMNS = (
    "delivery_id",
    "endpoint_id",
    "webhook_type",
    "event_id",
    "customer_id",
    "occurred_at",
    "status",
    "attempts",
    "last_attempt_at",
    "last_status_code",
    "last_error",
    "next_attempt_at",
)


class WebhooksProjection(Projection):
    name = "webhooks"
    tables = {
        "webhook_endpoints": """CREATE TABLE IF NOT EXISTS webhook_endpoints (
            endpoint_id TEXT PRIMARY KEY, url TEXT NOT NULL, event_types TEXT NOT NULL,
            include_personal_data INTEGER NOT NULL, status TEXT NOT NULL,
            added_at TEXT NOT NULL, removed_at TEXT)""",
        "webhook_deliveries": """CREATE TABLE IF NOT EXISTS webhook_deliveries (
            delivery_id TEXT PRIMARY KEY, endpoint_id TEXT NOT NULL, event_id TEXT NOT NULL,
            webhook_type TEXT NOT NULL, source_event TEXT NOT NULL, source_id TEXT NOT NULL,
            source_version BIGINT NOT NULL, customer_id TEXT, occurred_at TEXT NOT NULL,
            scheduled_at TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
            last_attempt_at TEXT, last_status_code INTEGER, last_error TEXT,
            next_attempt_at TEXT, sent_at TEXT)""",
        "webhook_attempts": """CREATE TABLE IF NOT EXISTS webhook_attempts (
            delivery_id TEXT NOT NULL, attempt INTEGER NOT NULL, attempted_at TEXT NOT NULL,
            status_code INTEGER NOT NULL, error TEXT NOT NULL, status TEXT NOT NULL,
            PRIMARY KEY (delivery_id, attempt))""",
    }
    indexes = (  # the sender's poll reads the open deliveries, not every one ever made
        "CREATE INDEX IF NOT EXISTS webhook_deliveries_open ON webhook_deliveries"
        f" (occurred_at, source_id, source_version, delivery_id) WHERE {OPEN_TERM}",
    )

    def on_WebhookEndpoints_EndpointAdded(self, db: ReadDB, r: EventRecord) -> None:
        d = r.data
        db.execute(
            "INSERT INTO webhook_endpoints (endpoint_id, url, event_types,"
            " include_personal_data, status, added_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                d["endpoint_id"],
                d["url"],
                json.dumps(list(d["event_types"])),
                1 if d["include_personal_data"] else 0,
                ACTIVE,
                ts(r.at),
            ),
        )

    def on_WebhookEndpoints_EndpointRemoved(self, db: ReadDB, r: EventRecord) -> None:
        db.execute(
            "UPDATE webhook_endpoints SET status = ?, removed_at = ? WHERE endpoint_id = ?",
            (REMOVED, ts(r.at), r.data["endpoint_id"]),
        )

    def on_WebhookDelivery_Scheduled(self, db: ReadDB, r: EventRecord) -> None:
        d = r.data
        db.execute(
            "INSERT INTO webhook_deliveries (delivery_id, endpoint_id, event_id, webhook_type,"
            " source_event, source_id, source_version, customer_id, occurred_at, scheduled_at,"
            " status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                d["delivery_id"],
                d["endpoint_id"],
                d["event_id"],
                d["webhook_type"],
                d["source_event"],
                d["source_id"],
                d["source_version"],
                d["customer_id"],
                ts(d["occurred_at"]),
                ts(r.at),
                PENDING,
            ),
        )

    def on_WebhookDelivery_Attempted(self, db: ReadDB, r: EventRecord) -> None:
        d = r.data
        attempted = ts(d["attempted_at"])
        db.execute(
            "UPDATE webhook_deliveries SET status = ?, attempts = ?, last_attempt_at = ?,"
            " last_status_code = ?, last_error = ?, next_attempt_at = ?,"
            " sent_at = CASE WHEN ? = ? THEN ? ELSE sent_at END WHERE delivery_id = ?",
            (
                d["status"],
                d["attempt"],
                attempted,
                d["status_code"],
                d["error"],
                ts(d["next_attempt_at"]),
                d["status"],
                SENT,
                attempted,
                d["delivery_id"],
            ),
        )
        db.execute(
            "INSERT INTO webhook_attempts (delivery_id, attempt, attempted_at, status_code,"
            " error, status) VALUES (?, ?, ?, ?, ?, ?)",
            (d["delivery_id"], d["attempt"], attempted, d["status_code"], d["error"], d["status"]),
        )

    def on_WebhookDelivery_Replayed(self, db: ReadDB, r: EventRecord) -> None:
        db.execute(
            "UPDATE webhook_deliveries SET status = ?, next_attempt_at = NULL"
            " WHERE delivery_id = ?",
            (PENDING, r.data["delivery_id"]),
        )


# ---- queries ---------------------------------------------------------------------------


def endpoints(db: ReadDB, status: str | None = None) -> list[dict[str, Any]]:
    clause, params = where([("status", status)])
    rows = db.query(
        f"SELECT {', '.join(ENDPOINT_COLUMNS)} FROM webhook_endpoints{clause}"
        " ORDER BY added_at, endpoint_id",
        params,
    )
    for row in rows:
        row["event_types"] = json.loads(row["event_types"])
        row["include_personal_data"] = bool(row["include_personal_data"])
    return rows


_DELIVERIES = (
    "SELECT d.delivery_id, d.endpoint_id, d.webhook_type, d.event_id, d.customer_id,"
    " d.occurred_at, CASE WHEN e.status = ? AND d.status IN ({open}) THEN ? ELSE d.status"
    " END AS status, d.attempts, d.last_attempt_at, d.last_status_code, d.last_error,"
    " d.next_attempt_at, d.source_id, d.source_version FROM webhook_deliveries d"
    " LEFT JOIN webhook_endpoints e ON e.endpoint_id = d.endpoint_id"
)


_ORDER = "d.occurred_at, d.source_id, d.source_version, d.delivery_id"  # the events' order


def deliveries(
    db: ReadDB,
    status: str | None = None,
    endpoint_id: str | None = None,
    customer_id: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The delivery log, oldest event first; `status` filters on the status shown."""
    inner = _DELIVERIES.format(open=marks(OPEN))
    clause, params = where(
        [("status", status), ("endpoint_id", endpoint_id), ("customer_id", customer_id)], "x"
    )
    columns = ", ".join(f"x.{name}" for name in DELIVERY_COLUMNS)
    sql = f"SELECT {columns} FROM ({inner}) x{clause} ORDER BY {_ORDER.replace('d.', 'x.')}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return db.query(sql, [REMOVED, *OPEN, CANCELED, *params])


def attempts(db: ReadDB, delivery_id: str) -> list[dict[str, Any]]:
    return db.query(
        "SELECT attempt, attempted_at, status_code, error, status FROM webhook_attempts"
        " WHERE delivery_id = ? ORDER BY attempt",
        (delivery_id,),
    )


def due(db: ReadDB, now: datetime, limit: int = 100) -> list[str]:
    """Ids of open deliveries of active endpoints whose next attempt is due: a hint (the
    sender asks each delivery itself), oldest first."""
    rows = db.query(
        "SELECT d.delivery_id FROM webhook_deliveries d"
        " JOIN webhook_endpoints e ON e.endpoint_id = d.endpoint_id AND e.status = ?"
        f" WHERE d.{OPEN_TERM}"
        " AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= ?)"
        f" ORDER BY {_ORDER}"
        f" LIMIT {int(limit)}",
        (ACTIVE, ts(now)),
    )
    return [row["delivery_id"] for row in rows]
