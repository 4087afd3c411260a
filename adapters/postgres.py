"""psycopg2 connections to the event-store database, for what eventsourcing does not keep.

eventsourcing talks to PostgreSQL through psycopg 3 on connections of its own, which
psycopg2 cannot share a transaction with: the setup lock, the relay's position and the
customer keys live on separate psycopg2 connections.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlsplit

SETUP_LOCK = 0x5B1ED5E7  # advisory lock id: "subledger setup"
RELAY_LOCK = 0x5B1ED6E7  # advisory lock id: "subledger relay"
RELAY_POSITION_DDL = (
    "CREATE TABLE IF NOT EXISTS subledger_relay_position ("
    " topic TEXT PRIMARY KEY, notification_id BIGINT NOT NULL)"
)


# libpq's connection parameters (PostgreSQL 17 docs, "Parameter Key Words"): what a URL's
# query may carry. Anything else is a typo that libpq would report in its own words.
LIBPQ_PARAMETERS = frozenset(
    {
        "host",
        "hostaddr",
        "port",
        "dbname",
        "user",
        "password",
        "passfile",
        "require_auth",
        "channel_binding",
        "connect_timeout",
        "client_encoding",
        "options",
        "application_name",
        "fallback_application_name",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
        "replication",
        "gssencmode",
        "sslmode",
        "requiressl",
        "sslnegotiation",
        "sslcompression",
        "sslcert",
        "sslkey",
        "sslpassword",
        "sslcertmode",
        "sslrootcert",
        "sslcrl",
        "sslcrldir",
        "sslsni",
        "requirepeer",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "krbsrvname",
        "gsslib",
        "gssdelegation",
        "service",
        "target_session_attrs",
        "load_balance_hosts",
    }
)
EVENT_STORE_FACTORY = "subledger.postgres:EventStoreFactory"  # PERSISTENCE_MODULE topic
PARAMETERS_KEY = "SUBLEDGER_LIBPQ_PARAMETERS"  # the URL's query, in eventsourcing's env
_factory: type | None = None


class SettingError(ValueError):
    """A setting that cannot work, said in the user's words (it names the variable)."""


def url_parameters(url: str, setting: str) -> dict[str, str]:
    """The URL's query parameters (sslmode, sslrootcert, ...), all of which libpq must get;
    ValueError naming `setting` for one libpq does not know."""
    params = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    unknown = sorted(set(params) - LIBPQ_PARAMETERS)
    if unknown:
        raise SettingError(
            f"{setting} has a parameter PostgreSQL does not know: '{unknown[0]}'; use libpq's"
            " connection parameters (sslmode, sslrootcert, connect_timeout, ...)"
        )
    return params


def event_store_factory() -> str:
    """The PERSISTENCE_MODULE topic of eventsourcing's PostgreSQL factory, extended: its
    datastore takes only host, port, name, user and password, this one hands the driver every
    other parameter of the URL too (from PARAMETERS_KEY), so `sslmode` is never lost."""
    global _factory
    if _factory is None:
        from eventsourcing.postgres import PostgresFactory
        from eventsourcing.utils import register_topic

        class EventStoreFactory(PostgresFactory):
            def __init__(self, env: Any) -> None:
                super().__init__(env)
                extra = dict(parse_qsl(self.env.get(PARAMETERS_KEY) or ""))
                # the pool connects lazily, on first use: from here on with every parameter
                pool = self.datastore.pool
                pool.kwargs = {**(pool.kwargs if isinstance(pool.kwargs, dict) else {}), **extra}

        register_topic(EVENT_STORE_FACTORY, EventStoreFactory)
        _factory = EventStoreFactory
    return EVENT_STORE_FACTORY


def connect(url: str, setting: str = "SUBLEDGER_EVENT_STORE") -> Any:
    """An autocommit connection: each statement stands alone, locks live with the session.

    The URL goes to libpq whole, so every parameter it carries (sslmode, ...) applies."""
    import psycopg2  # here, so the embedded default never loads it

    url_parameters(url, setting)
    conn = psycopg2.connect(url)
    conn.autocommit = True
    return conn


def execute(url: str, *statements: str) -> None:
    """Run `statements` on a connection of their own (table creation before workers start)."""
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            for statement in statements:
                run_ddl(cur, statement)
    finally:
        conn.close()


def run_ddl(cur: Any, statement: str) -> None:
    """Run `statement` (autocommit: alone in its transaction). PostgreSQL lets two
    `CREATE TABLE IF NOT EXISTS` at once race: the later fails (a duplicate pg_type row, or
    type) once the earlier committed, and the table is then there, as it asked."""
    import psycopg2.errors

    try:
        cur.execute(statement)
    except (  # the forms the race takes: the row, the type, the table
        psycopg2.errors.UniqueViolation,
        psycopg2.errors.DuplicateObject,
        psycopg2.errors.DuplicateTable,
    ):
        if not statement.lstrip().upper().startswith("CREATE TABLE IF NOT EXISTS"):
            raise


@contextmanager
def setup_lock(url: str | None) -> Iterator[None]:
    """Serialise table creation across processes (a no-op without PostgreSQL).

    Concurrent CREATE ... IF NOT EXISTS and eventsourcing's CREATE OR REPLACE FUNCTION race
    in PostgreSQL ("tuple concurrently updated") when several workers or CLI calls start.
    """
    if url is None:
        yield
        return
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (SETUP_LOCK,))
        yield
    finally:
        conn.close()  # releases the lock


class RelayPosition:
    """The last notification id the relay published to a topic, on its own connection.

    The same connection holds the relay's advisory lock, so it goes when the relay dies.
    """

    def __init__(self, url: str, topic: str) -> None:
        self.topic = topic
        self.conn = connect(url)
        with self.conn.cursor() as cur:
            run_ddl(cur, RELAY_POSITION_DDL)  # the relay, serve and a status check may race

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
        """Become the one relay publishing, unless another session already is."""
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (RELAY_LOCK,))
            return bool(cur.fetchone()[0])

    def close(self) -> None:
        self.conn.close()
