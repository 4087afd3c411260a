"""On PostgreSQL the customers' keys live in a database of their own, never the event store's:
a backup of the event store holds no key, so restoring one cannot undo an erasure."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from adapters.keystores import default_key_store_url
from bootstrap import Config, Runtime
from domain import commands as c
from domain.identity import customer_uuid

JAN = datetime(2024, 1, 1, tzinfo=UTC)


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchall()
    finally:
        conn.close()


def key_table(url: str) -> list[tuple[Any, ...]]:
    return rows(url, "SELECT customer_id, key FROM subledger_customer_keys ORDER BY 1")


def register(rt: Runtime, customer_id: str, name: str) -> None:
    rt.ledger.execute(
        c.RegisterCustomer(
            at=JAN,
            actor="it",
            source="pytest",
            command_id=f"reg-{customer_id}",
            customer_id=customer_id,
            name=name,
            email=f"{customer_id}@example.org",
            country="US",
            payment_token="tok_visa",
        )
    )


def test_the_default_key_store_is_a_database_beside_the_event_store(
    tmp_path: Path, pg_database_pair: Any
) -> None:
    events = pg_database_pair.event_store_url
    keys = default_key_store_url(events)
    assert keys.rsplit("/", 1)[1] == events.rsplit("/", 1)[1] + "_keys"
    assert default_key_store_url("postgresql://u:p@h:5/subledger_events?sslmode=require") == (
        "postgresql://u:p@h:5/subledger_keys?sslmode=require"
    )
    with Runtime(Config(data_dir=tmp_path, event_store=events)) as rt:
        register(rt, "ada", "Ada Lovelace")
        assert rt.ledger.customer_profile("ada")["name"] == "Ada Lovelace"
    assert [r[0] for r in key_table(keys)] == [str(customer_uuid("ada"))]
    # the event store's database has no key table at all
    assert rows(events, "SELECT to_regclass('subledger_customer_keys')") == [(None,)]


def test_keys_an_older_version_kept_in_the_event_store_move_and_the_old_table_empties(
    tmp_path: Path, pg_database_pair: Any
) -> None:
    events = pg_database_pair.event_store_url
    keys = default_key_store_url(events)
    config = Config(data_dir=tmp_path, event_store=events)
    with Runtime(config) as rt:
        register(rt, "ada", "Ada Lovelace")
        register(rt, "bob", "Bob Babbage")
    # as an older version left it: the keys in a table of the event-store database
    moved = key_table(keys)
    conn = psycopg2.connect(events)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE subledger_customer_keys (customer_id TEXT PRIMARY KEY, key TEXT NOT NULL)"
        )
        cur.executemany("INSERT INTO subledger_customer_keys VALUES (%s, %s)", moved)
    conn.close()
    conn = psycopg2.connect(keys)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DELETE FROM subledger_customer_keys")
    conn.close()

    with Runtime(config) as rt:
        assert rt.ledger.customer_profile("bob")["name"] == "Bob Babbage"
        assert key_table(keys) == moved
        assert key_table(events) == []  # emptied, and rewritten on disk
        rt.ledger.execute(
            c.EraseCustomer(
                at=JAN, actor="it", source="pytest", command_id="erase-ada", customer_id="ada"
            )
        )
    assert [r[0] for r in key_table(keys)] == [str(customer_uuid("bob"))]
    with Runtime(config) as rt:  # opening again brings nothing back
        assert rt.ledger.customer_profile("ada")["erased"] is True
        assert rt.ledger.customer_profile("bob")["name"] == "Bob Babbage"


def test_a_key_store_in_the_event_store_database_is_refused(
    tmp_path: Path, pg_database_pair: Any
) -> None:
    events = pg_database_pair.event_store_url
    with pytest.raises(ValueError, match="SUBLEDGER_KEY_STORE names the event store's own"):
        Runtime(Config(data_dir=tmp_path, event_store=events, key_store=events))


def ops_key_store() -> str:
    """SUBLEDGER_KEY_STORE as `ops/services env` prints it (the suite's conftest takes it
    out of the environment, so that the other tests' stores keep their own key databases)."""
    ops = Path(__file__).resolve().parents[2] / "ops" / "services"
    env = subprocess.run([str(ops), "env"], capture_output=True, text=True, check=True)
    line = next(x for x in env.stdout.splitlines() if "SUBLEDGER_KEY_STORE=" in x)
    return line.split("=", 1)[1].strip()


def test_ops_services_gives_the_keys_their_own_database_and_role(
    tmp_path: Path, pg_database_pair: Any, services: dict[str, str]
) -> None:
    keys = ops_key_store()
    assert keys.rsplit("/", 1)[1] == "subledger_keys"
    assert keys.split("://", 1)[1].startswith("subledger_keys:")
    # the ledger's own role (the event store's) cannot even open the key database
    ledger_role = services["event_store_url"].rsplit("/", 1)[0] + "/subledger_keys"
    with pytest.raises(psycopg2.OperationalError, match="permission denied"):
        psycopg2.connect(ledger_role)

    customer = f"ops-{os.getpid()}-{tmp_path.name}"
    count = (
        "SELECT COUNT(*) FROM subledger_customer_keys"
        f" WHERE customer_id = '{customer_uuid(customer)}'"
    )
    events = pg_database_pair.event_store_url
    with Runtime(Config(data_dir=tmp_path, event_store=events, key_store=keys)) as rt:
        register(rt, customer, "Carol Keyholder")
        assert rows(keys, count) == [(1,)]
        rt.ledger.execute(
            c.EraseCustomer(
                at=JAN, actor="it", source="pytest", command_id="erase", customer_id=customer
            )
        )
    assert rows(keys, count) == [(0,)]
