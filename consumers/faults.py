"""What a worker's failure means: a service lost (ride it out: start again, resume), or a bug
that fails on the same valid input every time (stop that partition, say why, go on with the
others).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

# A commands partition whose same batch fails this many times in a row (not for a lost
# service) is stopped there; `serve` started again tries it again.
STOP_AFTER = 3
COMMAND_FAULTS_DDL = (
    "CREATE TABLE IF NOT EXISTS subledger_command_faults (topic TEXT NOT NULL,"
    " partition INTEGER NOT NULL, position BIGINT NOT NULL, reason TEXT NOT NULL,"
    " recorded_at TEXT NOT NULL, PRIMARY KEY (topic, partition))"
)
# (topic, partition, first offset of the batch) -> failures in this process: the worker is
# built anew after each failure, so the count lives here
FAILURES: Counter[tuple[str, int, int]] = Counter()


def lost_dependency(exc: BaseException) -> str | None:
    """'PostgreSQL', 'Kafka' or 'network' when `exc` (or what caused it) says a service was
    lost or could not be reached: a fault to ride out, not a bug."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        kind = f"{type(current).__module__}.{type(current).__name__}"
        if kind.startswith(("psycopg", "eventsourcing.persistence")) and kind.endswith(
            ("OperationalError", "InterfaceError", "PoolTimeout", "PoolClosed")
        ):
            return "PostgreSQL"
        if kind.startswith("kafka.errors."):
            return "Kafka"
        if isinstance(current, ConnectionError | TimeoutError):
            return "network"
        current = current.__cause__ or current.__context__
    return None


def command_faults(event_store: str, topic: str) -> dict[int, dict[str, Any]]:
    """The stopped partitions of `topic`: {partition: {position, reason, recorded_at}}."""
    from adapters.postgres import connect

    conn = connect(event_store)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('subledger_command_faults') IS NOT NULL")
            if not cur.fetchone()[0]:
                return {}
            cur.execute(
                "SELECT partition, position, reason, recorded_at FROM subledger_command_faults"
                " WHERE topic = %s",
                (topic,),
            )
            return {
                int(p): {"position": int(pos), "reason": reason, "recorded_at": at}
                for p, pos, reason, at in cur.fetchall()
            }
    finally:
        conn.close()


def record_command_fault(
    event_store: str, topic: str, partition: int, position: int, reason: str
) -> None:
    from adapters.postgres import connect

    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    conn = connect(event_store)
    try:
        with conn.cursor() as cur:
            cur.execute(COMMAND_FAULTS_DDL)
            cur.execute(
                "INSERT INTO subledger_command_faults (topic, partition, position, reason,"
                " recorded_at) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (topic, partition)"
                " DO UPDATE SET position = excluded.position, reason = excluded.reason,"
                " recorded_at = excluded.recorded_at",
                (topic, partition, position, reason[:1000], at),
            )
    finally:
        conn.close()
