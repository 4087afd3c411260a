"""The composition root: configuration from the environment, and the parts wired together.

The only module that chooses adapters (key stores, gateway, clock, PostgreSQL connections)
and hands them in; nothing below it imports it. Nothing connects at import time:
`Runtime(config)` does, and `close()` lets go.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlencode, urlparse

from adapters import postgres, sqlite_files
from adapters.clock import now as wall_clock
from adapters.keystores import PostgresKeyStore, SQLiteKeyStore, default_key_store_url
from consumers.embedded import FeederProcess, LogFeeder
from consumers.payments import InProcessPayments
from consumers.schedule import FedSchedule, LocalSchedule
from domain.dunning import DunningSchedule
from domain.ledger import Ledger, LedgerSettings
from domain.notifications import DeliveryPolicy
from domain.policy import Policy
from domain.ports import KeyStore, PaymentGateway
from domain.subscription.schedule import ReminderLeads
from domain.vault import Vault
from projections.analytics import create_views
from projections.base import Projection
from projections.billing import BillingProjection, BillingSchedule
from projections.db import ReadDB
from projections.metrics import MetricsProjection
from projections.notifications import NotificationsProjection

if TYPE_CHECKING:
    from consumers.notify import Dispatcher
    from consumers.serve import Parts


def projections() -> list[Projection]:
    """The read models, in the order they are fed."""
    found: list[Projection] = [BillingProjection(), MetricsProjection()]
    found.append(NotificationsProjection())
    from projections.exports import ExportsProjection
    from projections.webhooks import WebhooksProjection

    found += [WebhooksProjection(), ExportsProjection()]
    return found


@dataclass(frozen=True)
class Config:
    """Every setting, from SUBLEDGER_* environment variables (CLI options override)."""

    data_dir: Path = Path(".subledger")
    event_store: str | None = None
    read_db: str | None = None
    key_store: str | None = None  # PostgreSQL: the customer keys' own database
    kafka_bootstrap: str | None = None
    kafka_security_protocol: str = "PLAINTEXT"  # SSL | SASL_PLAINTEXT | SASL_SSL
    kafka_sasl_mechanism: str | None = None  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = field(default=None, repr=False)
    kafka_ssl_cafile: str | None = None  # the CA that signed the brokers' certificates
    commands_topic: str = "subledger.commands"
    events_topic: str = "subledger.events"
    rejected_topic: str = "subledger.commands.rejected"
    group_prefix: str = "subledger"
    reminder_days: int = 7  # plans shorter than a year (SUBLEDGER_REMINDER_DAYS)
    dunning: str = "1,3,5,7"
    aggregate_cache: int = 20000
    actor: str = field(default_factory=lambda: os.environ.get("USER", "cli"))
    log_level: str = "INFO"  # `serve`'s log
    debug: bool = False  # tracebacks instead of one-line errors
    gateway: str | None = None  # sandbox | stripe; unset: the sandbox, not chosen explicitly
    stripe_api_key: str | None = None
    stripe_api_base: str | None = None  # e.g. stripe-mock's http://127.0.0.1:12111
    reminder_days_annual: int = 30  # plans of a year or longer
    smtp_url: str | None = None  # smtp://user:pass@host:port[?starttls=1]; unset: no email
    smtp_from: str = "subledger@localhost"
    templates_dir: Path | None = None  # overrides of the packaged message templates
    notify_lease_s: int = 60  # a claimed message is someone's to send for this long
    notify_backoff_s: int = 60  # first retry after this, then twice as long each time
    notify_attempts: int = 12  # then the message is given up (about a day)
    notify_budget_s: float = 10.0  # delivery at the end of a CLI command stops after this
    webhook_timeout: float = 10.0  # seconds a receiver has to answer one POST
    webhook_retry_delay: int = 60  # seconds before the first retry (x5 each time, <=12 h)
    webhook_secrets_key: str | None = None  # the secrets' own key; unset: generated, stored
    webhook_budget_s: float = 10.0  # delivery at the end of a CLI command stops after this
    policy: Path | None = None  # the access policy file (TOML); unset: everything allowed

    def serve_env(self) -> dict[str, str]:
        """The SUBLEDGER_* settings that make a `subledger serve` subprocess (or any other)
        use this configuration's stores and topics: `from_env`'s inverse for those."""
        return {
            "SUBLEDGER_DATA_DIR": str(self.data_dir),
            "SUBLEDGER_EVENT_STORE": self.event_store or "",
            "SUBLEDGER_READ_DB": self.read_db or "",
            "SUBLEDGER_KAFKA_BOOTSTRAP": self.kafka_bootstrap or "",
            "SUBLEDGER_COMMANDS_TOPIC": self.commands_topic,
            "SUBLEDGER_EVENTS_TOPIC": self.events_topic,
            "SUBLEDGER_REJECTED_TOPIC": self.rejected_topic,
            "SUBLEDGER_GROUP_PREFIX": self.group_prefix,
        }

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Config:
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {
            "data_dir": Path(env.get("SUBLEDGER_DATA_DIR", ".subledger")),
            "event_store": env.get("SUBLEDGER_EVENT_STORE") or None,
            "read_db": env.get("SUBLEDGER_READ_DB") or None,
            "key_store": env.get("SUBLEDGER_KEY_STORE") or None,
            "kafka_bootstrap": env.get("SUBLEDGER_KAFKA_BOOTSTRAP") or None,
            "kafka_security_protocol": env.get("SUBLEDGER_KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT",
            "kafka_sasl_mechanism": env.get("SUBLEDGER_KAFKA_SASL_MECHANISM") or None,
            "kafka_sasl_username": env.get("SUBLEDGER_KAFKA_SASL_USERNAME") or None,
            "kafka_sasl_password": env.get("SUBLEDGER_KAFKA_SASL_PASSWORD") or None,
            "kafka_ssl_cafile": env.get("SUBLEDGER_KAFKA_SSL_CAFILE") or None,
            "commands_topic": env.get("SUBLEDGER_COMMANDS_TOPIC", "subledger.commands"),
            "events_topic": env.get("SUBLEDGER_EVENTS_TOPIC", "subledger.events"),
            "rejected_topic": env.get("SUBLEDGER_REJECTED_TOPIC", "subledger.commands.rejected"),
            "group_prefix": env.get("SUBLEDGER_GROUP_PREFIX", "subledger"),
            "reminder_days": int(env.get("SUBLEDGER_REMINDER_DAYS", "7")),
            "dunning": env.get("SUBLEDGER_DUNNING", "1,3,5,7"),
            "aggregate_cache": int(env.get("SUBLEDGER_AGGREGATE_CACHE", "20000")),
            "actor": env.get("SUBLEDGER_ACTOR") or env.get("USER") or "cli",
            "log_level": env.get("SUBLEDGER_LOG_LEVEL") or "INFO",
            "debug": env.get("SUBLEDGER_DEBUG", "").strip().lower()
            not in ("", "0", "false", "no", "off"),
            "gateway": (env.get("SUBLEDGER_GATEWAY") or "").strip().lower() or None,
            "stripe_api_key": env.get("SUBLEDGER_STRIPE_API_KEY") or None,
            "stripe_api_base": env.get("SUBLEDGER_STRIPE_API_BASE") or None,
            "reminder_days_annual": int(env.get("SUBLEDGER_REMINDER_DAYS_ANNUAL", "30")),
            "smtp_url": env.get("SUBLEDGER_SMTP_URL") or None,
            "smtp_from": env.get("SUBLEDGER_SMTP_FROM") or "subledger@localhost",
            "templates_dir": Path(env["SUBLEDGER_TEMPLATES_DIR"])
            if env.get("SUBLEDGER_TEMPLATES_DIR")
            else None,
            "notify_lease_s": int(env.get("SUBLEDGER_NOTIFY_LEASE", "60")),
            "notify_backoff_s": int(env.get("SUBLEDGER_NOTIFY_BACKOFF", "60")),
            "notify_attempts": int(env.get("SUBLEDGER_NOTIFY_ATTEMPTS", "12")),
            "notify_budget_s": float(env.get("SUBLEDGER_NOTIFY_BUDGET", "10")),
            "webhook_timeout": float(env.get("SUBLEDGER_WEBHOOK_TIMEOUT", "10")),
            "webhook_retry_delay": int(env.get("SUBLEDGER_WEBHOOK_RETRY_DELAY", "60")),
            "webhook_secrets_key": env.get("SUBLEDGER_WEBHOOK_SECRETS_KEY") or None,
            "webhook_budget_s": float(env.get("SUBLEDGER_WEBHOOK_BUDGET", "10")),
            "policy": Path(env["SUBLEDGER_POLICY"]) if env.get("SUBLEDGER_POLICY") else None,
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
            reminders=ReminderLeads(days=self.reminder_days, annual_days=self.reminder_days_annual),
            delivery=DeliveryPolicy(attempts=self.notify_attempts, backoff_s=self.notify_backoff_s),
        )

    def ledger_env(self) -> dict[str, str]:
        """eventsourcing's own settings for the event store this config names."""
        # The Ledger hands out cached aggregates without copying them and evicts whatever an
        # uncommitted unit of work touched. Fast-forwarding (a query per read) is on for
        # PostgreSQL; embedded, other processes on the same data dir may write too, but a
        # stale copy's write is refused by the store's version check, and the one read that
        # decides without writing (is a charge still pending?) asks `Ledger.get_at_least`.
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
                PROCESS_RECORDER_TOPIC="adapters.chain_recorder:SQLiteChainRecorder",
            )
            return env
        url = urlparse(self.event_store)
        if url.scheme not in ("postgresql", "postgres"):
            raise ValueError(
                f"SUBLEDGER_EVENT_STORE must be a postgresql:// URL, not '{url.scheme}://'"
            )
        # eventsourcing's own factory passes on five fields: ours hands libpq the rest too
        params = postgres.url_parameters(self.event_store, "SUBLEDGER_EVENT_STORE")
        env.update(
            PERSISTENCE_MODULE=postgres.event_store_factory()
            if params
            else "eventsourcing.postgres",
            POSTGRES_DBNAME=url.path.lstrip("/"),
            POSTGRES_HOST=url.hostname or "127.0.0.1",
            POSTGRES_PORT=str(url.port or 5432),
            POSTGRES_USER=unquote(url.username or ""),
            POSTGRES_PASSWORD=unquote(url.password or ""),
            CREATE_TABLE="y",
            PROCESS_RECORDER_TOPIC="adapters.chain_postgres:PostgresChainRecorder",
        )
        if params:
            env[postgres.PARAMETERS_KEY] = urlencode(params)
        if "connect_timeout" in params:  # the pool waits as long as the driver may
            env["POSTGRES_CONNECT_TIMEOUT"] = params["connect_timeout"]
        return env

    def read_db_url(self) -> str:
        if self.read_db:
            return self.read_db
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.data_dir / 'read.sqlite'}"


def access_policy(config: Config) -> Policy | None:
    """The access policy SUBLEDGER_POLICY names (PolicyError if unusable); None: no policy."""
    if config.policy is None:
        return None
    from adapters.policy_file import load

    return load(config.policy)


def setup_lock(config: Config) -> AbstractContextManager[None]:
    """One process at a time creates tables: PostgreSQL's advisory lock, or embedded an
    flock in the data dir."""
    if config.event_store is None:
        return sqlite_files.setup_lock(config.data_dir)
    return postgres.setup_lock(config.event_store)


def key_store(config: Config) -> KeyStore:
    """Customer keys apart from the events: a SQLite file embedded, a database of their own
    beside a PostgreSQL event store (SUBLEDGER_KEY_STORE; default <event store>_keys)."""
    if config.event_store is None:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        return SQLiteKeyStore(str(config.data_dir / "keys.sqlite"))
    url = config.key_store or default_key_store_url(config.event_store)
    return PostgresKeyStore(url, event_store=config.event_store)


def payment_gateway(config: Config) -> PaymentGateway:
    """The gateway SUBLEDGER_GATEWAY names; its records beside the event store."""
    from adapters.gateway import SandboxGateway

    kind = config.gateway or "sandbox"
    if kind == "sandbox":  # its charges in a file, as a real gateway keeps them
        config.data_dir.mkdir(parents=True, exist_ok=True)
        return SandboxGateway(str(config.data_dir / "gateway.sqlite"))
    if kind != "stripe":
        raise ValueError(f"SUBLEDGER_GATEWAY must be sandbox or stripe, not '{kind}'")
    if not config.stripe_api_key:
        raise ValueError("SUBLEDGER_GATEWAY=stripe needs SUBLEDGER_STRIPE_API_KEY (sk_...)")
    from adapters.stripe_gateway import StripeGateway, journal_for

    journal = journal_for(config.event_store, config.data_dir)
    return StripeGateway(config.stripe_api_key, api_base=config.stripe_api_base, journal=journal)


def notifier(runtime: Runtime, **options: Any) -> Dispatcher:
    """The notifications dispatcher for `runtime`: SMTP if SUBLEDGER_SMTP_URL is set (else
    email waits), the packaged templates under SUBLEDGER_TEMPLATES_DIR's overrides."""
    from adapters.smtp import SMTPMailer
    from consumers.notify import Dispatcher
    from consumers.templates import Renderer

    config = runtime.config
    if "mailer" not in options:
        options["mailer"] = SMTPMailer(config.smtp_url) if config.smtp_url else None
    settings: dict[str, Any] = {
        "sender": config.smtp_from,
        "lease_s": config.notify_lease_s,
        "catch_up": runtime.catch_up,
    }
    return Dispatcher(
        runtime.ledger, runtime.db, Renderer(config.templates_dir), **{**settings, **options}
    )


class Runtime:
    """A ledger with its adapters, its read-model database and the in-process feeder."""

    def __init__(
        self,
        config: Config,
        *,
        now: Callable[[], datetime] = wall_clock,
        policy: Policy | None = None,
    ) -> None:
        self.clock = now
        # loaded once: `serve` hands its workers the one it read; a bad file stops here
        self.policy = policy if policy is not None else access_policy(config)
        with setup_lock(config):
            self._open(config)

    def _open(self, config: Config) -> None:
        self.config = config
        self.keys: Any = key_store(config)
        self.db = ReadDB(config.read_db_url())
        self.projections = projections()
        for projection in self.projections:
            projection.create(self.db)
        create_views(self.db)  # the analysts' views over them, both modes (projections/analytics)
        self.schedule = BillingSchedule(self.db, leads=config.settings().reminders)
        self.ledger = Ledger(
            config.ledger_env(),
            vault=Vault(self.keys),
            gateway=payment_gateway(config),
            schedule=self.schedule,
            settings=config.settings(),
            recorded_clock=wall_clock,
        )
        self.feeder = LogFeeder(self.ledger, self.db, self.projections)
        self.local: LocalSchedule | None = None
        if self.kafka_mode:  # the read models are the Kafka projectors'
            self.local = LocalSchedule(config, self.ledger)
            self.ledger.schedule = self.local.schedule
        else:  # every answer comes with the read models caught up
            self.ledger.schedule = FedSchedule(self.schedule, self.feeder, BillingProjection.name)
            # the payments worker runs in process, after each commit
            self.ledger.after_commit = InProcessPayments(self.ledger)

    @property
    def kafka_mode(self) -> bool:
        return bool(self.config.kafka_bootstrap) and not self.config.embedded

    def now(self) -> datetime:
        """The default effective time: the wall clock, or the ledger's clock if it is ahead."""
        wall = self.clock()
        ledger = self.ledger.clock_now()
        return max(wall, ledger) if ledger else wall

    def catch_up(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Feed the read models from the event store, unless Kafka projectors own them.

        A projection that fails on an event is left stuck there (see `feeder.faults()`) and
        this returns normally; only a busy or unreachable database raises.
        """
        if self.kafka_mode:
            return 0
        return self.feeder.catch_up(progress)

    @contextmanager
    def feeding_apart(self) -> Iterator[bool]:
        """While the block records, a process of its own feeds the read models (the machine's
        other core), and the ledger's due work comes from a private billing model in memory,
        fed here; True if so. The block then need not catch up; after it, one catch-up brings
        the read models to the end. Kafka mode: False, and nothing changes.
        """
        if self.kafka_mode:
            yield False
            return
        private = LocalSchedule(self.config, self.ledger, in_memory=True)
        shared, self.ledger.schedule = self.ledger.schedule, private.schedule
        feeder = FeederProcess(Runtime, self.config)  # the class: opened there, by name
        recorded = False
        try:
            feeder.start()
            yield True
            recorded = True
        finally:
            feeder.stop(now=not recorded)  # an error or Ctrl-C: no wait for it to catch up
            self.ledger.schedule = shared
            private.close()

    def close(self) -> None:
        if self.local is not None:
            self.local.close()
        self.ledger.close()
        getattr(self.ledger.gateway, "close", lambda: None)()
        self.db.close()
        self.keys.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_parts(config: Config) -> Parts:
    """What `serve`'s workers are built from: a Runtime each, the projections, the lock."""
    from consumers.serve import Parts  # Kafka's client loads only for serve

    policy = access_policy(config)  # read once, before any worker starts
    return Parts(
        runtime=lambda: Runtime(config, policy=policy),
        projections=projections,
        setup_lock=lambda: setup_lock(config),
        now=wall_clock,
        notifier=notifier,  # notifications
        policy=policy,
    )


def serve(
    config: Config,
    workers: Sequence[str] = ("commands", "relay", "projections"),
    *,
    clock: str = "wall",
    tick_s: float = 60.0,
    stop: threading.Event | None = None,
    install_signals: bool = True,
    metrics_address: tuple[str, int] | None = None,
) -> int:
    """`subledger serve`: run the Kafka workers until SIGTERM/SIGINT (or `stop`); a worker
    that loses PostgreSQL or Kafka starts again, so it runs on through their restarts.

    Returns 0 (1 only if the interpreter itself stopped a worker); raises
    ValueError/RuntimeError on bad settings.
    """
    from consumers import serve as serving

    return serving.serve(
        config,
        workers,
        serve_parts(config),
        clock=clock,
        tick_s=tick_s,
        stop=stop,
        install_signals=install_signals,
        metrics_address=metrics_address,
    )
