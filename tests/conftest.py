"""Shared fixtures: real PostgreSQL and Kafka from ``ops/services`` (see ``ops/services --help``).

Unit tests request none of these and need no services. Integration tests request
``pg_database``, ``pg_database_pair``, ``create_topic``, ``kafka_admin`` or ``services``; the
session-scoped ``services`` fixture then starts the services (``ops/services up``) only when
SUBLEDGER_KAFKA_BOOTSTRAP / SUBLEDGER_EVENT_STORE / SUBLEDGER_READ_DB are not already set
(``./dev test`` sets them). A missing or unreachable service FAILS the test; it never skips.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import psycopg2
import pytest
from hypothesis import settings
from psycopg2 import sql

# Property tests check behaviour, not speed (that is bench/'s): no per-example deadline,
# which a loaded 2-core machine can overrun now and then (a test that fails sometimes)
settings.register_profile("subledger", deadline=None)
settings.load_profile("subledger")

# kafka-python 3.0.x loads its protocol schemas with deprecated importlib.resources calls on
# import: ~200 DeprecationWarnings of noise per run. Silence exactly those, then import it.
_KAFKA_NOISE = ("read_text is deprecated", "open_text is deprecated")
for _message in _KAFKA_NOISE:
    warnings.filterwarnings("ignore", message=_message, category=DeprecationWarning)
from kafka import KafkaAdminClient  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    """Keep the kafka-python import noise silenced during test phases too."""
    for message in _KAFKA_NOISE:
        config.addinivalue_line("filterwarnings", f"ignore:{message}:DeprecationWarning")


# ops/services' own key database is for users; each test's event store keeps its keys in a
# database of its own, <event store>_keys (the default). test_key_store.py checks the former.
os.environ.pop("SUBLEDGER_KEY_STORE", None)

REPO_ROOT = Path(__file__).resolve().parent.parent
OPS_SERVICES = REPO_ROOT / "ops" / "services"

# services-dict key -> environment variable (the project's configuration contract)
SERVICE_ENV = {
    "kafka_bootstrap": "SUBLEDGER_KAFKA_BOOTSTRAP",
    "event_store_url": "SUBLEDGER_EVENT_STORE",
    "read_db_url": "SUBLEDGER_READ_DB",
}


class DatabasePair(NamedTuple):
    """URLs of two fresh databases: an event store and a read model."""

    event_store_url: str
    read_db_url: str


def _run_ops_services(*args: str, timeout: float = 900) -> str:
    """Run ops/services; a failure fails the calling test with the script's output."""
    try:
        proc = subprocess.run(
            [str(OPS_SERVICES), *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"ops/services {' '.join(args)}: {exc}", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(
            f"ops/services {' '.join(args)} failed (exit {proc.returncode}):\n"
            f"{proc.stdout}{proc.stderr}",
            pytrace=False,
        )
    return proc.stdout


def _start_services_and_export() -> None:
    """`ops/services up`, then put `ops/services env` into os.environ (unset names only)."""
    _run_ops_services("up")
    for line in _run_ops_services("env").splitlines():
        match = re.fullmatch(r"export (\w+)=(.*)", line.strip())
        if match and match.group(1) != "SUBLEDGER_KEY_STORE":
            os.environ.setdefault(match.group(1), shlex.split(match.group(2))[0])


def _check_reachable(settings: dict[str, str]) -> None:
    """Fail (not skip) unless PostgreSQL answers both URLs and the Kafka port accepts."""
    for key in ("event_store_url", "read_db_url"):
        try:
            psycopg2.connect(settings[key], connect_timeout=5).close()
        except psycopg2.Error as exc:
            pytest.fail(f"PostgreSQL unreachable at {SERVICE_ENV[key]}: {exc}", pytrace=False)
    for server in settings["kafka_bootstrap"].split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
        except OSError as exc:
            pytest.fail(
                f"Kafka unreachable at {server} (SUBLEDGER_KAFKA_BOOTSTRAP): {exc}", pytrace=False
            )


def _with_dbname(url: str, dbname: str) -> str:
    """The same postgresql:// URL pointing at another database."""
    return urlsplit(url)._replace(path=f"/{dbname}").geturl()


def _unique_name(node_name: str, suffix: str, illegal: str, max_base: int) -> str:
    """`pytest_<test name>[_<suffix>]_<8 hex>` with illegal characters replaced by '_'."""
    base = re.sub(illegal, "_", node_name)[:max_base].strip("_")
    tail = re.sub(illegal, "_", suffix)[:40].strip("_")
    return "_".join(p for p in ("pytest", base, tail, uuid.uuid4().hex[:8]) if p)


@pytest.fixture(scope="session")
def services() -> dict[str, str]:
    """Real service settings (starts ops/services when the env lacks them); lazily requested."""
    if not all(os.environ.get(var) for var in SERVICE_ENV.values()):
        _start_services_and_export()
    settings = {key: os.environ[var] for key, var in SERVICE_ENV.items()}
    _check_reachable(settings)
    return settings


def _drop_database(admin: Any, name: str) -> None:
    """DROP ... WITH (FORCE); an autovacuum worker that just started on the database may need
    a moment to go when the role lacks pg_signal_backend (a PostgreSQL of the user's own)."""
    statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    for attempt in range(10):
        try:
            with admin.cursor() as cur:
                cur.execute(statement)
            return
        except psycopg2.errors.InsufficientPrivilege:
            if attempt == 9:
                raise
            time.sleep(0.5)


@pytest.fixture
def make_pg_database(
    services: dict[str, str], request: pytest.FixtureRequest
) -> Iterator[Callable[..., str]]:
    """Factory `make_pg_database(label="")` -> URL of a fresh database, dropped after the test."""
    admin = psycopg2.connect(_with_dbname(services["read_db_url"], "postgres"))
    admin.autocommit = True
    created: list[str] = []

    def make(label: str = "") -> str:
        # PostgreSQL identifiers: 63 bytes; keep them lower-case so no quoting is ever needed.
        # (30: room for the "_keys" of the database a PostgreSQL key store makes beside it)
        name = _unique_name(request.node.name.lower(), label.lower(), r"[^a-z0-9_]+", 30)
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return _with_dbname(services["read_db_url"], name)

    try:
        yield make
    finally:
        try:
            for name in created:
                _drop_database(admin, name)
                _drop_database(admin, f"{name.removesuffix('_events')}_keys")
        finally:
            admin.close()


@pytest.fixture
def pg_database(make_pg_database: Callable[..., str]) -> str:
    """URL of a fresh, empty database owned by the subledger role, dropped after the test."""
    return make_pg_database()


@pytest.fixture
def pg_database_pair(make_pg_database: Callable[..., str]) -> DatabasePair:
    """Two fresh databases (event store, read model), as `.event_store_url` / `.read_db_url`."""
    return DatabasePair(make_pg_database("events"), make_pg_database("read"))


@pytest.fixture
def make_topic(request: pytest.FixtureRequest) -> Callable[..., str]:
    """Factory `make_topic(suffix="")` -> a unique, legal Kafka topic name (not created)."""

    def make(suffix: str = "") -> str:
        # Legal topic characters are [a-zA-Z0-9._-]; '.' is avoided too ('.'/'_' collide).
        return _unique_name(request.node.name, suffix, r"[^a-zA-Z0-9_-]+", 150)

    return make


@pytest.fixture
def topic(make_topic: Callable[..., str]) -> str:
    """A unique topic name for this test (create it with `create_topic` for N partitions)."""
    return make_topic()


@pytest.fixture(scope="session")
def kafka_admin(services: dict[str, str]) -> Iterator[KafkaAdminClient]:
    """A kafka-python admin client on the test broker, shared by the session."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=services["kafka_bootstrap"], client_id="subledger-pytest-admin"
        )
    except Exception as exc:
        pytest.fail(f"Kafka admin client could not connect: {exc!r}", pytrace=False)
    try:
        yield admin
    finally:
        admin.close()


@pytest.fixture
def create_topic(kafka_admin: KafkaAdminClient) -> Iterator[Callable[..., str]]:
    """`create_topic(name, partitions=3, configs=None)`: create, wait for leaders; deleted after."""
    created: list[str] = []

    def create(name: str, partitions: int = 3, configs: dict[str, str] | None = None) -> str:
        spec = {"num_partitions": partitions, "replication_factor": 1, "configs": configs or {}}
        kafka_admin.create_topics({name: spec}, wait_for_metadata=True)
        created.append(name)
        return name

    yield create
    if created:
        kafka_admin.delete_topics(created, raise_errors=False)
