"""The composition root: configuration from the environment, and the parts wired together.

Nothing connects at import time; `Runtime.open(config)` does, and `close()` lets go.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from uuid import UUID

from domain.dunning import DunningSchedule
from domain.ledger import Ledger, LedgerSettings
from domain.vault import SQLiteKeyStore, Vault
from projections.base import Projection
from projections.billing import BillingProjection, BillingSchedule
from projections.db import ReadDB
from projections.metrics import MetricsProjection


def projections() -> list[Projection]:
    return [BillingProjection(), MetricsProjection()]


@dataclass(frozen=True)
class Config:
    """Every setting, from SUBLEDGER_* environment variables (CLI options override)."""

    data_dir: Path = Path(".subledger")
    event_store: str | None = None
    read_db: str | None = None
    kafka_bootstrap: str | None = None
    commands_topic: str = "subledger.commands"
    events_topic: str = "subledger.events"
    rejected_topic: str = "subledger.commands.rejected"
    group_prefix: str = "subledger"
    reminder_days: int = 7
    remind_all_plans: bool = False
    dunning: str = "1,3,5,7"
    aggregate_cache: int = 20000
    actor: str = field(default_factory=lambda: os.environ.get("USER", "cli"))

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Config:
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {
            "data_dir": Path(env.get("SUBLEDGER_DATA_DIR", ".subledger")),
            "event_store": env.get("SUBLEDGER_EVENT_STORE") or None,
            "read_db": env.get("SUBLEDGER_READ_DB") or None,
            "kafka_bootstrap": env.get("SUBLEDGER_KAFKA_BOOTSTRAP") or None,
            "commands_topic": env.get("SUBLEDGER_COMMANDS_TOPIC", "subledger.commands"),
            "events_topic": env.get("SUBLEDGER_EVENTS_TOPIC", "subledger.events"),
            "rejected_topic": env.get("SUBLEDGER_REJECTED_TOPIC", "subledger.commands.rejected"),
            "group_prefix": env.get("SUBLEDGER_GROUP_PREFIX", "subledger"),
            "reminder_days": int(env.get("SUBLEDGER_REMINDER_DAYS", "7")),
            "remind_all_plans": env.get("SUBLEDGER_REMIND_ALL_PLANS", "") in ("1", "true", "y"),
            "dunning": env.get("SUBLEDGER_DUNNING", "1,3,5,7"),
            "aggregate_cache": int(env.get("SUBLEDGER_AGGREGATE_CACHE", "20000")),
            "actor": env.get("SUBLEDGER_ACTOR") or env.get("USER") or "cli",
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_overrides(self, **overrides: Any) -> Config:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def embedded(self) -> bool:
        return self.event_store is None

    def settings(self) -> LedgerSettings:
        return LedgerSettings(
            dunning=DunningSchedule.parse(self.dunning),
            reminder_days=self.reminder_days,
            remind_all_plans=self.remind_all_plans,
        )

    def ledger_env(self) -> dict[str, str]:
        """eventsourcing's own settings for the event store this config names."""
        # The Ledger hands out cached aggregates without copying them and evicts whatever an
        # uncommitted unit of work touched; fast-forwarding (a query per read) is only
        # needed where other processes write the same store concurrently: PostgreSQL.
        env = {
            "AGGREGATE_CACHE_MAXSIZE": str(self.aggregate_cache),
            "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
            "AGGREGATE_CACHE_FASTFORWARD": "y",
        }
        if self.event_store is None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            env.update(
                AGGREGATE_CACHE_FASTFORWARD="n",
                PERSISTENCE_MODULE="eventsourcing.sqlite",
                SQLITE_DBNAME=str(self.data_dir / "events.sqlite"),
                SQLITE_LOCK_TIMEOUT="30",
            )
            return env
        url = urlparse(self.event_store)
        if url.scheme not in ("postgresql", "postgres"):
            raise ValueError(
                f"SUBLEDGER_EVENT_STORE must be a postgresql:// URL, not '{url.scheme}://'"
            )
        env.update(
            PERSISTENCE_MODULE="eventsourcing.postgres",
            POSTGRES_DBNAME=url.path.lstrip("/"),
            POSTGRES_HOST=url.hostname or "127.0.0.1",
            POSTGRES_PORT=str(url.port or 5432),
            POSTGRES_USER=unquote(url.username or ""),
            POSTGRES_PASSWORD=unquote(url.password or ""),
            CREATE_TABLE="y",
        )
        return env

    def read_db_url(self) -> str:
        if self.read_db:
            return self.read_db
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.data_dir / 'read.sqlite'}"


class PostgresKeyStore:
    """Customer keys in their own table of the event-store database, never in the events."""

    def __init__(self, url: str) -> None:
        import psycopg2

        self._lock = threading.Lock()
        self._conn = psycopg2.connect(url)
        self._conn.autocommit = True
        with self._conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS subledger_customer_keys ("
                "customer_id TEXT PRIMARY KEY, key TEXT NOT NULL)"
            )

    def get(self, customer_id: str) -> str | None:
        with self._lock, self._conn.cursor() as cur:
            cur.execute(
                "SELECT key FROM subledger_customer_keys WHERE customer_id = %s", (customer_id,)
            )
            row = cur.fetchone()
        return row[0] if row else None

    def put_new(self, customer_id: str, key: str) -> str:
        with self._lock, self._conn.cursor() as cur:
            cur.execute(
                "INSERT INTO subledger_customer_keys (customer_id, key) VALUES (%s, %s)"
                " ON CONFLICT (customer_id) DO NOTHING",
                (customer_id, key),
            )
            cur.execute(
                "SELECT key FROM subledger_customer_keys WHERE customer_id = %s", (customer_id,)
            )
            return cur.fetchone()[0]

    def delete(self, customer_id: str) -> bool:
        with self._lock, self._conn.cursor() as cur:
            cur.execute(
                "DELETE FROM subledger_customer_keys WHERE customer_id = %s", (customer_id,)
            )
            return cur.rowcount > 0

    def close(self) -> None:
        self._conn.close()


SETUP_LOCK = 0x5B1ED5E7  # PostgreSQL advisory lock id: "subledger setup"


@contextmanager
def setup_lock(config: Config) -> Iterator[None]:
    """Serialise table creation across processes: concurrent CREATE ... IF NOT EXISTS and
    eventsourcing's CREATE OR REPLACE FUNCTION race in PostgreSQL ("tuple concurrently
    updated") when several workers or CLI calls start at once."""
    if config.event_store is None:
        yield
        return
    import psycopg2

    conn = psycopg2.connect(config.event_store)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (SETUP_LOCK,))
        yield
    finally:
        conn.close()  # releases the lock


class FedSchedule:
    """The ledger's due-work hint from a billing model fed in process, whole even when stuck.

    Should that model be stuck on an event (a projection bug), every subscription with an
    event at or after that one has a stale row: those are added to the candidates, so no
    due work is silently skipped and no command refused. A superset is safe: the schedule
    is a hint and each aggregate decides what is due.
    """

    def __init__(self, schedule: BillingSchedule, feeder: Any, billing: str) -> None:
        self.schedule = schedule
        self.schedule.catch_up = None  # done here, before the stuck check
        self.feeder = feeder
        self.billing = billing

    def _unseen(self) -> list[UUID]:
        """Subscriptions the billing model has not seen every event of (none if not stuck)."""
        self.feeder.catch_up()
        fault = self.feeder.faults().get(self.billing)
        if fault is None:
            return []
        return self.feeder.aggregates_since(int(fault["position"]) - 1, "Subscription")

    def due_subscriptions(self, up_to: datetime) -> list[UUID]:
        unseen = self._unseen()
        return list(dict.fromkeys([*self.schedule.due_subscriptions(up_to), *unseen]))

    def subscriptions_on_plan(self, plan_id: str) -> list[UUID]:
        unseen = self._unseen()
        return list(dict.fromkeys([*self.schedule.subscriptions_on_plan(plan_id), *unseen]))


class LocalSchedule:
    """Due work found in a private billing model fed in process from the event store.

    In Kafka mode the shared read models are the Kafka projectors' and may lag; the ledger's
    schedule must not. One process owns the SQLite file (flock); another keeps its copy in
    memory, rebuilt from the event store when first asked.
    """

    def __init__(self, config: Any, ledger: Any) -> None:
        from consumers.embedded import LogFeeder

        config.data_dir.mkdir(parents=True, exist_ok=True)
        dbname = urlparse(config.event_store or "").path.lstrip("/") or "events"
        path = config.data_dir / f"schedule-{dbname}.sqlite"
        self._lock = open(f"{path}.lock", "w")  # noqa: SIM115 - held for the process's life
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            url = f"sqlite:///{path}"
        except BlockingIOError:
            url = "sqlite:///:memory:"
        self.db = ReadDB(url)
        projection = BillingProjection()
        projection.create(self.db)
        self.feeder = LogFeeder(ledger, self.db, [projection])
        billing = BillingSchedule(
            self.db, lead_days=max(config.reminder_days, 0), remind_all=config.remind_all_plans
        )
        self.schedule = FedSchedule(billing, self.feeder, projection.name)

    def close(self) -> None:
        self.db.close()
        self._lock.close()


class Runtime:
    """A ledger, its read-model database and the in-process projection feeder."""

    def __init__(self, config: Config) -> None:
        with setup_lock(config):
            self._open(config)

    def _open(self, config: Config) -> None:
        from consumers.embedded import LogFeeder

        self.config = config
        if config.embedded:
            config.data_dir.mkdir(parents=True, exist_ok=True)
            self.keys: Any = SQLiteKeyStore(str(config.data_dir / "keys.sqlite"))
        else:
            assert config.event_store is not None
            self.keys = PostgresKeyStore(config.event_store)
        self.db = ReadDB(config.read_db_url())
        self.projections = projections()
        for projection in self.projections:
            projection.create(self.db)
        self.schedule = BillingSchedule(
            self.db, lead_days=max(config.reminder_days, 0), remind_all=config.remind_all_plans
        )
        self.ledger = Ledger(
            config.ledger_env(),
            vault=Vault(self.keys),
            schedule=self.schedule,
            settings=config.settings(),
        )
        self.feeder = LogFeeder(self.ledger, self.db, self.projections)
        self.local: LocalSchedule | None = None
        if self.kafka_mode:  # the read models are the Kafka projectors'
            self.local = LocalSchedule(config, self.ledger)
            self.ledger.schedule = self.local.schedule
        else:  # every answer comes with the read models caught up
            self.ledger.schedule = FedSchedule(self.schedule, self.feeder, BillingProjection.name)

    @property
    def kafka_mode(self) -> bool:
        return bool(self.config.kafka_bootstrap) and not self.config.embedded

    def catch_up(self, progress=None) -> int:
        """Feed the read models from the event store, unless Kafka projectors own them.

        A projection that fails on an event is left stuck there (see `feeder.faults()`) and
        this returns normally; only a busy or unreachable database raises.
        """
        if self.kafka_mode:
            return 0
        return self.feeder.catch_up(progress)

    def close(self) -> None:
        if self.local is not None:
            self.local.close()
        self.ledger.close()
        self.db.close()
        self.keys.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
