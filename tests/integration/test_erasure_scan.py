"""After `customer erase` nothing readable of the person is left anywhere the ledger keeps
data: no file of the data dir, no table of any of its databases (event store, read models,
keys), no message of the events topic. The books still reconcile afterwards.

A person with distinctive data goes through the whole life the ledger records: registration,
a charge with their token, a support note, a change of email, renewals with their
notifications delivered, a webhook endpoint that asks for personal data. Every byte is then
scanned for any piece of their name, email, token or note: raw (files, columns, messages)
and each stored event decoded (in case a compressor hid plaintext from the raw scan).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2
from pipeline_support import Served, consume_all, make_config, wait_projected
from test_reconcile import Mailbox

from adapters.keystores import default_key_store_url
from bootstrap import Config, Runtime, notifier
from domain import commands as c
from domain.identity import customer_uuid
from domain.notifications.commands import RecordCustomerNote
from projections.reconcile import reconcile

NAME, EMAIL, NEW_EMAIL = "Zebulon Quixotic", "zeb.quix@example.org", "zq.newmail@example.net"
TOKEN, NOTE = "tok_zqvisa_4417", "Xylophone grievance about the March invoice"
# every distinctive piece: a leak of part of a field is a leak too
NEEDLES = [b"Zebulon", b"Quixotic", b"zeb.quix", b"zq.newmail", b"zqvisa", b"Xylophone"]


def T(month: int, day: int) -> datetime:
    return datetime(2025, month, day, tzinfo=UTC)


def live_a_life(rt: Runtime, before_notify: Any = None) -> None:
    def run(cls: type[c.Command], at: datetime, **fields: Any) -> None:
        run.n += 1  # type: ignore[attr-defined]
        outcome = rt.ledger.execute(
            cls(at=at, actor="it", source="pytest", command_id=f"c{run.n}", **fields)  # type: ignore[attr-defined]
        )
        assert "rejected" not in outcome, outcome

    run.n = 0  # type: ignore[attr-defined]
    pricing = {"model": "flat", "amount": 2900, "tiers": []}
    run(c.DefinePlan, T(1, 1), plan_id="pro", name="Pro", currency="USD", pricing=pricing)
    run(
        c.AddWebhookEndpoint,
        T(1, 1),
        endpoint_id="crm",
        url="https://crm.example.com/hooks",
        include_personal_data=True,
    )
    for who, name, email, token in [
        ("zq", NAME, EMAIL, TOKEN),
        ("other", "Olive Other", "olive@example.com", "tok_visa"),
    ]:
        run(
            c.RegisterCustomer,
            T(1, 1),
            customer_id=who,
            name=name,
            email=email,
            country="US",
            payment_token=token,
        )
        run(c.Subscribe, T(1, 2), customer_id=who, plan_id="pro", subscription_id=f"s-{who}")
    run(RecordCustomerNote, T(1, 3), customer_id="zq", channel="phone", text=NOTE)
    run(c.UpdateCustomer, T(1, 4), customer_id="zq", email=NEW_EMAIL)
    run(c.AdvanceClock, T(3, 5))
    if before_notify is not None:
        before_notify()
    mailbox = Mailbox()
    sent = notifier(rt, mailer=mailbox, now=lambda: T(3, 5)).deliver()
    assert sent["sent"] > 0
    assert any(NAME in str(m) or NEW_EMAIL in str(m) for m in mailbox.sent)
    profile = rt.ledger.customer_profile("zq")
    assert (profile["name"], profile["email"]) == (NAME, NEW_EMAIL)
    run(c.EraseCustomer, T(3, 6), customer_id="zq")
    assert rt.keys.get(str(customer_uuid("zq"))) is None
    assert rt.ledger.customer_profile("zq")["erased"] is True
    assert rt.ledger.customer_profile("other")["name"] == "Olive Other"


def leaks(where: str, data: bytes) -> list[str]:
    return [f"{where}: {needle.decode()}" for needle in NEEDLES if needle in data]


def decoded_events(rt: Runtime) -> list[str]:
    found, start = [], 0
    while batch := rt.ledger.recorder.select_notifications(
        start=start, limit=500, inclusive_of_start=False
    ):
        for n in batch:
            event = rt.ledger.mapper.to_domain_event(n)
            found += leaks(f"event {n.id} {type(event).__qualname__}", repr(vars(event)).encode())
        start = batch[-1].id
    return found


def scan_files(root: Path) -> list[str]:
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files, f"nothing under {root}"
    return [hit for p in files for hit in leaks(str(p.relative_to(root)), p.read_bytes())]


def as_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, memoryview)):
        return bytes(value)
    return str(value).encode()


def scan_database(url: str) -> list[str]:
    """Every row of every table (every schema but PostgreSQL's own), bytea as its bytes."""
    conn = psycopg2.connect(url)
    found: list[str] = []
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT table_schema, table_name FROM information_schema.tables"
                " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
                " AND table_type = 'BASE TABLE'"
            )
            tables = cur.fetchall()
            assert tables, f"no tables in {url}"
            for schema, table in tables:
                cur.execute(f'SELECT * FROM "{schema}"."{table}"')
                for row in cur.fetchall():
                    blob = b"\x00".join(as_bytes(v) for v in row)
                    found += leaks(f"{url.rsplit('/', 1)[1]}.{schema}.{table}", blob)
    finally:
        conn.close()
    return found


def test_embedded_erasure_leaves_nothing_readable_in_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Runtime(Config(data_dir=data)) as rt:
        live_a_life(rt)
        rt.catch_up()
        assert reconcile(rt.ledger, rt.db, rt.projections).differences == []
        assert decoded_events(rt) == []
    assert scan_files(data) == []


def test_kafka_erasure_leaves_nothing_readable_in_databases_topic_or_data_dir(
    services: dict[str, str], pg_database_pair: Any, make_topic: Any, tmp_path: Path
) -> None:
    config = make_config(services, pg_database_pair, make_topic, tmp_path / "data")
    served = Served(config, ["relay", "projections"])
    try:
        with Runtime(config) as rt:
            live_a_life(rt, before_notify=lambda: wait_projected(config, rt))
            wait_projected(config, rt)
            published = rt.ledger.recorder.max_notification_id()
            report = reconcile(rt.ledger, rt.db, rt.projections, head=published)
            assert report.differences == []
            assert decoded_events(rt) == []
    finally:
        served.close()
    messages = consume_all(config, config.events_topic, want=published)
    assert len(messages) == published
    found = [hit for m in messages for hit in leaks(f"events topic @{m.offset}", m.value)]
    urls = [config.event_store, config.read_db, default_key_store_url(config.event_store or "")]
    found += [hit for url in urls for hit in scan_database(url or "")]
    found += scan_files(tmp_path / "data")
    assert found == []
    # the scan sees plaintext where there is some: a canary row in the read-model database
    conn = psycopg2.connect(config.read_db or "")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE pytest_canary (blob BYTEA)")
        cur.execute("INSERT INTO pytest_canary VALUES (%s)", (f"x{NAME}x".encode(),))
    conn.close()
    assert scan_database(config.read_db or "") == [
        f"{(config.read_db or '').rsplit('/', 1)[1]}.public.pytest_canary: {needle}"
        for needle in ("Zebulon", "Quixotic")
    ]
