"""Webhooks delivered to a real HTTP receiver (http.server in a thread, a free port) that
verifies every signature: on the embedded SQLite ledger and on PostgreSQL without Kafka."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.http import verify
from adapters.secrets import secret_store
from bootstrap import Config
from consumers.webhooks import Dispatcher, dispatcher_for, start_at_head
from domain import commands as c
from domain.webhooks.delivery import body_id
from domain.webhooks.retry import RetryPolicy
from projections import webhooks as model
from projections.webhooks import WebhooksProjection
from tests.unit.ledger_support import Book, T, dump_tables

SECRET = "whsec_0123456789abcdef0123456789abcdef"


class Receiver:
    """A real HTTP endpoint: checks each signature, answers as scripted (default 200)."""

    def __init__(self, secret: str = SECRET, delay_s: float = 0.0) -> None:
        self.secret = secret
        self.delay_s = delay_s
        self.got: list[dict[str, Any]] = []
        self.script: dict[str, list[int]] = {}  # body id -> statuses to answer in turn
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                doc = json.loads(raw)
                header = self.headers.get("Subledger-Signature", "")
                with outer.lock:
                    outer.got.append(
                        {
                            "id": doc["id"],
                            "type": doc["type"],
                            "created": doc["created"],
                            "data": doc["data"],
                            "delivery": self.headers.get("Subledger-Delivery"),
                            "verified": verify(outer.secret, raw, header),
                            "raw": raw,
                        }
                    )
                    queued = outer.script.get(doc["id"]) or []
                    status = queued.pop(0) if queued else 200
                time.sleep(outer.delay_s)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/subledger"

    def ids(self, webhook_type: str | None = None) -> list[str]:
        return [g["id"] for g in self.got if webhook_type in (None, g["type"])]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Clock:
    """The sender's wall clock, moved by the test (retries wait for it, not for real time)."""

    def __init__(self) -> None:
        self.t = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.t


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(params=["sqlite", "postgres"])
def book(request, tmp_path):
    if request.param == "sqlite":
        b = Book.embedded(tmp_path, webhook_retry_delay=0)
    else:
        pair = request.getfixturevalue("pg_database_pair")
        config = Config(
            data_dir=tmp_path,
            event_store=pair.event_store_url,
            read_db=pair.read_db_url,
            webhook_retry_delay=0,
        )
        b = Book(config)
    yield b
    b.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sender(book: Book, clock: Clock):
    d = dispatcher_for(book.rt, book.config, now=clock)
    yield d
    d.close()


def add_endpoint(book: Book, url: str, endpoint_id: str = "we_1", at=None, **fields) -> None:
    """What `webhook add` does: the secret into the store, then the command."""
    store = secret_store(book.config.event_store, book.config.data_dir)
    assert store.put_new(endpoint_id, SECRET)
    store.close()
    start_at_head(book.ledger)
    book.run(c.AddWebhookEndpoint, at or T(2025, 1, 2), endpoint_id=endpoint_id, url=url, **fields)


def a_customer_subscribes(book: Book, customer: str = "cus_1", day: int = 3) -> None:
    if not book.db.query("SELECT 1 FROM plans WHERE plan_id = 'basic'"):
        book.plan("basic", T(2025, 1, 1))
    book.customer(customer, T(2025, 1, day), name="Ada Lovelace", email="ada@example.com")
    book.subscribe(f"sub_{customer}", customer, "basic", T(2025, 1, day, 1))


def test_every_delivery_is_signed_and_carries_id_type_created_and_data(
    book: Book, sender: Dispatcher, receiver: Receiver
) -> None:
    book.plan("basic", T(2025, 1, 1))
    book.customer("cus_0", T(2025, 1, 1, 12))  # before the endpoint: never its event
    add_endpoint(book, receiver.url)
    a_customer_subscribes(book)
    counts = sender.run_once(time.monotonic() + 60)
    types = [g["type"] for g in receiver.got]
    assert {"customer.created", "subscription.created", "invoice.created"} <= set(types)
    assert all(g["verified"] for g in receiver.got)
    assert counts["sent"] == len(receiver.got) and counts["failed"] == 0
    by_type = {g["type"]: g for g in receiver.got}
    created = by_type["customer.created"]
    (registered,) = [
        r
        for r in book.records()
        if r.name == "Customer.Registered" and r.data["customer_id"] == "cus_1"
    ]
    assert created["id"] == body_id(registered.event_id)
    assert created["created"] == int(T(2025, 1, 3).timestamp())
    assert created["data"] == {"customer_id": "cus_1", "country": "US"}
    assert b"Ada" not in created["raw"] and b"ada@example.com" not in created["raw"]
    sub = by_type["subscription.created"]["data"]
    assert (sub["subscription_id"], sub["plan_id"], sub["status"]) == (
        "sub_cus_1",
        "basic",
        "active",
    )
    invoice = by_type["invoice.created"]["data"]
    assert (invoice["number"], invoice["total"], invoice["currency"]) == ("INV-000001", 1000, "USD")
    assert all(g["data"].get("customer_id") != "cus_0" for g in receiver.got)
    log = model.deliveries(book.db)
    assert {row["status"] for row in log} == {"sent"}
    assert sorted(row["delivery_id"] for row in log) == sorted(g["delivery"] for g in receiver.got)


def test_a_receiver_that_fails_twice_gets_the_same_id_three_times(
    book: Book, sender: Dispatcher, receiver: Receiver, clock: Clock
) -> None:
    add_endpoint(book, receiver.url, event_types=("customer.created",))
    book.customer("cus_1", T(2025, 1, 3))
    (registered,) = [r for r in book.records() if r.name == "Customer.Registered"]
    event = body_id(registered.event_id)
    receiver.script[event] = [500, 503]
    assert sender.run_once(time.monotonic() + 30)["failed"] == 1
    clock.t += timedelta(seconds=1)
    assert sender.run_once(time.monotonic() + 30)["failed"] == 1
    clock.t += timedelta(seconds=1)
    assert sender.run_once(time.monotonic() + 30)["sent"] == 1
    clock.t += timedelta(seconds=1)
    assert sender.run_once(time.monotonic() + 30) == {
        "scheduled": 0,
        "sent": 0,
        "failed": 0,
        "gave_up": 0,
    }
    assert receiver.ids() == [event, event, event]
    assert len({g["delivery"] for g in receiver.got}) == 1
    assert all(g["verified"] for g in receiver.got)
    assert len({g["raw"] for g in receiver.got}) == 1  # the same body every time
    (row,) = model.deliveries(book.db)
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("sent", 3, 200)
    log = model.attempts(book.db, row["delivery_id"])
    assert [(a["status_code"], a["status"]) for a in log] == [
        (500, "failed"),
        (503, "failed"),
        (200, "sent"),
    ]


def test_a_rebuild_sends_nothing_again_and_a_replay_sends_the_same_id(
    book: Book, sender: Dispatcher, receiver: Receiver
) -> None:
    add_endpoint(book, receiver.url)
    a_customer_subscribes(book)
    sender.run_once(time.monotonic() + 60)
    sent = list(receiver.ids())
    assert sent
    tables = ["webhook_endpoints", "webhook_deliveries", "webhook_attempts"]
    before = dump_tables(book.db, tables)
    book.rt.feeder.rebuild(WebhooksProjection())
    assert dump_tables(book.db, tables) == before
    assert sender.run_once(time.monotonic() + 30)["sent"] == 0
    assert receiver.ids() == sent
    paid = [row for row in model.deliveries(book.db) if row["webhook_type"] == "invoice.created"]
    book.run(c.ReplayWebhookDelivery, T(2025, 1, 5), delivery_id=paid[0]["delivery_id"])
    assert sender.run_once(time.monotonic() + 30)["sent"] == 1
    assert receiver.ids() == [*sent, body_id(paid[0]["event_id"])]
    first = next(g for g in receiver.got if g["type"] == "invoice.created")
    assert receiver.got[-1]["raw"] == first["raw"]
    assert all(g["verified"] for g in receiver.got)
    (row,) = [r for r in model.deliveries(book.db) if r["delivery_id"] == paid[0]["delivery_id"]]
    assert (row["status"], row["attempts"]) == ("sent", 2)


def test_no_answer_is_a_failure_retried_later_and_the_window_ends_in_gave_up(
    book: Book, clock: Clock
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    add_endpoint(book, f"http://127.0.0.1:{port}/hook", event_types=("customer.created",))
    book.customer("cus_1", T(2025, 1, 3))
    store = secret_store(book.config.event_store, book.config.data_dir)
    sender = Dispatcher(
        book.ledger,
        book.db,
        store,
        dispatcher_for(book.rt, book.config).lock,
        now=clock,
        timeout_s=5,
        policy=RetryPolicy(first_delay_s=60),
        catch_up=book.rt.catch_up,
    )
    try:
        assert sender.run_once(time.monotonic() + 30)["failed"] == 1
        (row,) = model.deliveries(book.db)
        assert (row["last_status_code"], row["last_error"]) == (0, "no answer: connection refused")
        assert row["next_attempt_at"] == (clock.t + timedelta(minutes=1)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        assert sender.run_once(time.monotonic() + 30)["failed"] == 0  # not due yet
        clock.t += timedelta(days=4)
        assert sender.run_once(time.monotonic() + 30)["gave_up"] == 1
        (row,) = model.deliveries(book.db)
        assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("gave_up", 2, None)
        assert [r["delivery_id"] for r in model.deliveries(book.db, status="gave_up")] == [
            row["delivery_id"]
        ]
    finally:
        sender.close()


def test_personal_data_only_where_asked_for_and_never_after_erasure(
    book: Book, sender: Dispatcher, receiver: Receiver
) -> None:
    add_endpoint(book, receiver.url, "we_plain", event_types=("customer.updated",))
    add_endpoint(
        book,
        receiver.url,
        "we_crm",
        event_types=("customer.updated",),
        include_personal_data=True,
    )
    book.customer("cus_1", T(2025, 1, 3), name="Ada Lovelace", email="ada@example.com")
    book.run(c.UpdateCustomer, T(2025, 1, 4), customer_id="cus_1", country="GB")
    sender.run_once(time.monotonic() + 30)
    bodies = {g["delivery"]: g for g in receiver.got}
    rows = {r["endpoint_id"]: r["delivery_id"] for r in model.deliveries(book.db)}
    assert bodies[rows["we_crm"]]["data"]["customer"] == {
        "name": "Ada Lovelace",
        "email": "ada@example.com",
    }
    assert b"Ada" not in bodies[rows["we_plain"]]["raw"]
    assert "customer" not in bodies[rows["we_plain"]]["data"]
    book.run(c.EraseCustomer, T(2025, 1, 5), customer_id="cus_1")
    crm = rows["we_crm"]
    book.run(c.ReplayWebhookDelivery, T(2025, 1, 6), delivery_id=crm)
    sender.run_once(time.monotonic() + 30)
    replayed = receiver.got[-1]
    assert replayed["delivery"] == crm and replayed["verified"]
    assert replayed["id"] == bodies[crm]["id"]
    assert "customer" not in replayed["data"] and b"Ada" not in replayed["raw"]


def test_two_senders_at_once_send_each_attempt_once(book: Book, clock: Clock) -> None:
    receiver = Receiver(delay_s=0.2)
    try:
        add_endpoint(book, receiver.url)
        for n in range(3):
            a_customer_subscribes(book, f"cus_{n}", day=3 + n)
        other = Book(book.config)  # a second process's runtime on the same store
        senders = [
            dispatcher_for(book.rt, book.config, now=clock),
            dispatcher_for(other.rt, other.config, now=clock),
        ]
        threads = [
            threading.Thread(target=s.run_once, args=(time.monotonic() + 60,)) for s in senders
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for s in senders:
            s.run_once(time.monotonic() + 60)  # whatever the busy one left
            s.close()
        other.close()
        ids = receiver.ids()
        assert len(ids) == len(set(ids)) >= 9
        assert all(g["verified"] for g in receiver.got)
        assert {r["status"] for r in model.deliveries(book.db)} == {"sent"}
    finally:
        receiver.close()
