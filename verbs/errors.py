"""Errors in the user's words: one line, what is wrong, with which setting, what to do.

No exception class names, no errno, no passwords, no card numbers, no terminal control.
"""

from __future__ import annotations

import contextlib
import os
import re
import traceback
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import click

from domain.pci import mask_card_numbers
from verbs.render import escape


class Failure(click.ClickException):
    """One line on stderr, a non-zero exit."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


EX_TEMPFAIL = 75  # sysexits: a temporary failure, try again
_STORE_FILES = ("events.sqlite", "read.sqlite", "keys.sqlite")
_SQLITE_HEADER = b"SQLite format 3\x00"
_PASSWORD_IN_URL = re.compile(r"(://[^/\s:@]*:)[^@\s]*@")
_PG_DOWN = (
    "connection refused",
    "could not connect",
    "could not translate host name",
    "couldn't get a connection",
    "connection to server",
    "server closed the connection",
    "timeout expired",
    "no route to host",
    "network is unreachable",
    "connection timed out",
)


def error_line(message: Any) -> str:
    """Every error the user sees: one line, card numbers masked, no passwords, no controls."""
    text = " ".join(mask_card_numbers(str(message)).split())
    return "error: " + escape(_PASSWORD_IN_URL.sub(r"\1***@", text))


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and what it was raised from (eventsourcing wraps driver errors)."""
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in out and len(out) < 16:
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def _kinds(exc: BaseException) -> set[str]:
    """`module.Class` for every class the exception is: matched without importing drivers."""
    return {f"{k.__module__}.{k.__name__}" for k in type(exc).__mro__}


def _raised_in(exc: BaseException, fragment: str) -> bool:
    """True if a frame of the exception's traceback runs code in a path with `fragment`."""
    tb = exc.__traceback__
    for frame, _ in traceback.walk_tb(tb):
        if fragment in frame.f_code.co_filename.replace(os.sep, "/"):
            return True
    return False


def _not_sqlite(data_dir: Path) -> str | None:
    """The first store file in the data dir that is not an SQLite database."""
    candidates = [data_dir / n for n in _STORE_FILES]
    with contextlib.suppress(OSError):
        candidates += sorted(p for p in data_dir.glob("*.sqlite") if p not in candidates)
    for path in candidates:
        try:
            with path.open("rb") as f:
                head = f.read(100)
        except OSError:
            continue
        if head and not head.startswith(_SQLITE_HEADER):
            return path.name
    return None


def _postgres(config: Any, chain: list[BaseException], message: str) -> str:
    """Which configured PostgreSQL the driver could not use: 'host:port (SETTING)', never
    the URL (it may hold a password)."""
    found: list[tuple[str, int, str]] = []  # host, port, setting
    for setting, attr in (
        ("SUBLEDGER_EVENT_STORE", "event_store"),
        ("SUBLEDGER_READ_DB", "read_db"),
        ("SUBLEDGER_KEY_STORE", "key_store"),
    ):
        url = getattr(config, attr, None)
        derived = False
        if setting == "SUBLEDGER_KEY_STORE" and not url and getattr(config, "event_store", None):
            from adapters.keystores import default_key_store_url

            url, derived = default_key_store_url(config.event_store), True
        if not url:
            continue
        parts = urlsplit(url)
        try:
            port = parts.port or 5432
        except ValueError:
            port = 5432
        named = re.search(
            r'database "([^"]*)" does not exist|permission denied for database "([^"]*)"', message
        )
        if named and (named.group(1) or named.group(2)) != unquote(parts.path.lstrip("/")):
            continue  # the server named the database it lacks or refuses: not this one
        if derived and not named:
            continue  # the event store's own server: its setting names it
        found.append((parts.hostname or "localhost", port, setting))
    if not found:
        return "its host and port (SUBLEDGER_EVENT_STORE / SUBLEDGER_READ_DB)"
    # psycopg names the server it tried: 'connection to server at "HOST", port PORT failed'
    hit = [f for f in found if f'"{f[0]}"' in message and f"port {f[1]} " in f"{message} "]
    psycopg3 = any(k.startswith(("psycopg.", "psycopg_pool.")) for e in chain for k in _kinds(e))
    if not hit and psycopg3:  # eventsourcing's driver: the event store
        hit = [f for f in found if f[2] == "SUBLEDGER_EVENT_STORE"]
    places: dict[str, list[str]] = {}
    for host, port, setting in hit or found:
        places.setdefault(f"{host}:{port}", []).append(setting)
    return " or ".join(f"{where} ({', '.join(names)})" for where, names in places.items())


def explain(exc: BaseException, config: Any = None) -> tuple[str, int]:
    """An unexpected exception in the user's words (no class names, no errno), and the exit
    status: what is wrong, with which setting, and what to do."""
    chain = _chain(exc)
    texts = " ".join(str(e) for e in chain)
    lowered = texts.lower()
    kinds = set().union(*(_kinds(e) for e in chain))
    data_dir: Path | None = getattr(config, "data_dir", None)
    where = str(data_dir) if data_dir is not None else "the data directory"

    if data_dir is not None and any(
        isinstance(e, FileExistsError | NotADirectoryError) for e in chain
    ):
        if data_dir.exists() and not data_dir.is_dir():
            return f"the data directory {data_dir} is a file; give a directory (--data-dir)", 1
        blocker = next((p for p in data_dir.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            return (
                f"the data directory {data_dir} is inside a file ({blocker}); "
                "give a directory (--data-dir)",
                1,
            )
    if data_dir is not None and any(isinstance(e, PermissionError) for e in chain):
        return (
            f"cannot write in the data directory {data_dir} (permission denied); "
            "give a directory you can write (--data-dir)",
            1,
        )
    if "not a database" in lowered:
        bad = _not_sqlite(data_dir) if data_dir is not None else None
        what = f"{bad} is not" if bad else "a file in it is not"
        return f"{where} is not a subledger store ({what} an SQLite database)", 1
    if "database disk image is malformed" in lowered:
        return (
            f"{where} holds a damaged SQLite database (database disk image is malformed); "
            "restore the data directory from a backup",
            1,
        )
    if "database is locked" in lowered or "database table is locked" in lowered:
        if _raised_in(exc, "/projections/") and not _raised_in(exc, "/eventsourcing/"):
            return (
                f"the read models in {where} are busy (another subledger process is updating "
                "them); try again",
                EX_TEMPFAIL,
            )
        return (
            f"the data directory {where} is busy (another subledger process is writing); "
            "nothing was recorded, try again",
            EX_TEMPFAIL,
        )
    setting = next((e for e in chain if type(e).__name__ == "SettingError"), None)
    if setting is not None:  # adapters.postgres.SettingError: it names the setting already
        return str(setting), 1
    if any(k.startswith("psycopg") and k.endswith(".OperationalError") for k in kinds):
        target = _postgres(config, chain, texts)
        if "permission denied for database" in lowered:
            return (
                f"PostgreSQL at {target} does not let this user open the database (permission"
                " denied); check the user in the URL",
                1,
            )
        if "does not exist" in lowered:
            return (
                f"PostgreSQL at {target} has no such database; create it, or point the "
                "setting at one that exists",
                1,
            )
        if "authentication failed" in lowered or "no password supplied" in lowered:
            return (
                f"PostgreSQL at {target} refused the login (password authentication failed); "
                "check the user and password in the URL",
                1,
            )
        if any(sign in lowered for sign in _PG_DOWN):
            return (
                f"cannot reach PostgreSQL at {target}; check it is running (ops/services status)",
                1,
            )
    bootstrap = getattr(config, "kafka_bootstrap", None) or "(not set)"
    if "kafka.errors.NoBrokersAvailable" in kinds or "kafka.errors.KafkaConnectionError" in kinds:
        return _kafka_down(bootstrap), 1
    if "kafka.errors.KafkaTimeoutError" in kinds:
        if "bootstrap" in lowered:
            return _kafka_down(bootstrap), 1
        return (
            f"Kafka at {bootstrap} (SUBLEDGER_KAFKA_BOOTSTRAP) did not answer in time "
            f"({_message(exc)}); check it is running (ops/services status)",
            1,
        )
    if any(isinstance(e, OverflowError) for e in chain):
        return (
            "a number is too large to store (the limit is 9223372036854775807)"
            " (SUBLEDGER_DEBUG=1 shows the details)",
            1,
        )
    detail = _message(exc)
    return (
        f"unexpected failure: {detail} (SUBLEDGER_DEBUG=1 shows the details)"
        if detail
        else "unexpected failure (SUBLEDGER_DEBUG=1 shows the details)",
        1,
    )


def _kafka_down(bootstrap: str) -> str:
    return (
        f"cannot reach Kafka at {bootstrap} (SUBLEDGER_KAFKA_BOOTSTRAP); "
        "check it is running (ops/services status)"
    )


def _message(exc: BaseException) -> str:
    """The exception's own words without its class name or errno."""
    if isinstance(exc, OSError) and exc.strerror:
        name = f": {exc.filename}" if exc.filename is not None else ""
        return f"{exc.strerror.lower()}{name}"
    if isinstance(exc, KeyError) and exc.args:
        return f"no entry {exc.args[0]!r}"
    return str(exc).removeprefix(f"{type(exc).__name__}: ")
