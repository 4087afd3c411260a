"""`subledger webhook ...` as a user runs it (embedded), against a real HTTP receiver that
verifies every signature: delivery at the end of each command, the log, replay, rebuild,
and the secret kept out of the events."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_webhooks_embedded import SECRET, Receiver

SUBLEDGER = str(Path(sys.executable).with_name("subledger"))


def cli(data_dir: Path, *args: str, check: bool = True, stdin: str | None = None, **env: str):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    environ.update(SUBLEDGER_ACTOR="pytest", SUBLEDGER_WEBHOOK_RETRY_DELAY="0", **env)
    proc = subprocess.run(
        [SUBLEDGER, "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )
    if check:
        assert proc.returncode == 0, f"{args}: {proc.stderr}"
    return proc


def as_json(proc: subprocess.CompletedProcess):
    return json.loads(proc.stdout)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def setup_book(d: Path) -> None:
    cli(d, "plan", "define", "basic", "--name", "Basic", "--pricing", "flat", "--price",
        "10.00", "--currency", "USD", "--at", "2025-01-01")  # fmt: skip


def add(d: Path, url: str, *extra: str) -> str:
    out = as_json(cli(d, "webhook", "add", url, "--secret", SECRET, "--format", "json", *extra))
    return out["endpoint_id"]


def register(d: Path, customer: str, day: str = "2025-01-03") -> None:
    cli(d, "customer", "register", customer, "--name", "Ada Lovelace", "--email",
        "ada@example.com", "--payment-token", "tok_visa", "--at", day)  # fmt: skip


def test_each_command_delivers_its_webhooks_and_the_secret_stays_out_of_the_events(
    tmp_path: Path, receiver: Receiver
) -> None:
    setup_book(tmp_path)
    endpoint = add(tmp_path, receiver.url, "--at", "2025-01-02")
    register(tmp_path, "cus_1")
    assert [g["type"] for g in receiver.got] == ["customer.created"]  # no `deliver` needed
    cli(tmp_path, "subscribe", "cus_1", "basic", "--subscription-id", "sub_1", "--at",
        "2025-01-03T01:00:00Z")  # fmt: skip
    assert {"subscription.created", "invoice.created"} <= {g["type"] for g in receiver.got}
    assert all(g["verified"] for g in receiver.got)
    endpoints = as_json(cli(tmp_path, "webhook", "list", "--format", "json"))
    assert [(e["endpoint_id"], e["url"], e["status"]) for e in endpoints] == [
        (endpoint, receiver.url, "active")
    ]
    for name in ("events.sqlite", "read.sqlite"):  # the secret: only in keys.sqlite, sealed
        data = b"".join(p.read_bytes() for p in tmp_path.glob(f"{name}*"))
        assert SECRET.encode() not in data
    keys = b"".join(p.read_bytes() for p in tmp_path.glob("keys.sqlite*"))
    assert SECRET.encode() not in keys
    assert SECRET not in json.dumps(endpoints)


def test_a_dead_receiver_never_fails_a_command_and_deliver_sends_later(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    setup_book(tmp_path)
    add(tmp_path, f"http://127.0.0.1:{port}/hook", "--events", "customer.created",
        "--at", "2025-01-02")  # fmt: skip
    proc = cli(tmp_path, "customer", "register", "cus_1", "--name", "Ada", "--email",
               "ada@example.com", "--payment-token", "tok_visa", "--at", "2025-01-03")  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == ""
    (failed,) = as_json(cli(tmp_path, "webhook", "deliveries", "--status", "failed",
                            "--format", "json"))  # fmt: skip
    assert (failed["last_status_code"], failed["attempts"]) == (0, 1)
    assert failed["last_error"] == "no answer: connection refused"
    assert failed["attempt_log"][0]["status"] == "failed"
    # the receiver comes up on that port; `webhook deliver` sends what is due
    receiver = Receiver()
    receiver.server.server_close()
    import http.server

    receiver.server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", port), receiver.server.RequestHandlerClass
    )
    import threading

    threading.Thread(target=receiver.server.serve_forever, daemon=True).start()
    try:
        out = as_json(cli(tmp_path, "webhook", "deliver", "--format", "json"))
        assert out["sent"] == 1
        assert [g["type"] for g in receiver.got] == ["customer.created"]
        assert receiver.got[0]["verified"] and receiver.got[0]["delivery"] == failed["delivery_id"]
        (row,) = as_json(cli(tmp_path, "webhook", "deliveries", "--format", "json"))
        assert (row["status"], row["attempts"]) == ("sent", 2)
    finally:
        receiver.close()


def test_replay_resends_the_same_id_and_a_rebuild_sends_nothing(
    tmp_path: Path, receiver: Receiver
) -> None:
    setup_book(tmp_path)
    add(tmp_path, receiver.url, "--events", "customer.created", "--at", "2025-01-02")
    register(tmp_path, "cus_1")
    (row,) = as_json(cli(tmp_path, "webhook", "deliveries", "--format", "json"))
    assert row["status"] == "sent"
    cli(tmp_path, "projections", "rebuild", "webhooks")
    cli(tmp_path, "webhook", "deliver")
    assert len(receiver.got) == 1
    assert as_json(cli(tmp_path, "webhook", "deliveries", "--format", "json")) == [row]
    cli(tmp_path, "webhook", "replay", row["delivery_id"])
    assert receiver.ids() == [receiver.got[0]["id"]] * 2
    assert receiver.got[0]["raw"] == receiver.got[1]["raw"]
    assert all(g["verified"] for g in receiver.got)


def test_bad_input_records_nothing_and_keeps_no_secret(tmp_path: Path) -> None:
    setup_book(tmp_path)
    bad = cli(tmp_path, "webhook", "add", "https://u:p@crm.example.com/h", "--secret", SECRET,
              check=False)  # fmt: skip
    assert bad.returncode != 0
    assert bad.stderr.startswith("error: the endpoint's URL must not hold a user name")
    short = cli(tmp_path, "webhook", "add", "https://crm.example.com/h", "--secret", "short",
                check=False)  # fmt: skip
    assert short.returncode != 0 and "--secret must be 16-200 characters" in short.stderr
    card = cli(tmp_path, "webhook", "add", "https://crm.example.com/h", "--secret",
               "4242-4242-4242-4242", check=False)  # fmt: skip
    assert card.returncode != 0 and "card number" in card.stderr and "4242" not in card.stderr
    types = cli(tmp_path, "webhook", "add", "https://crm.example.com/h", "--secret", SECRET,
                "--events", "invoice.pad", check=False)  # fmt: skip
    assert types.returncode != 0 and "unknown webhook type" in types.stderr
    assert as_json(cli(tmp_path, "webhook", "list", "--format", "json")) == []
    assert secrets(tmp_path) == []


def secrets(data_dir: Path) -> list[tuple]:
    """The rows of the secrets table (none if it was never even created)."""
    import sqlite3

    db = sqlite3.connect(data_dir / "keys.sqlite")
    try:
        return db.execute("SELECT * FROM webhook_secrets").fetchall()
    except sqlite3.OperationalError as exc:
        assert "no such table" in str(exc)
        return []
    finally:
        db.close()


def test_the_secret_can_come_from_stdin_and_a_removed_endpoint_loses_it(
    tmp_path: Path, receiver: Receiver
) -> None:
    setup_book(tmp_path)
    out = as_json(cli(tmp_path, "webhook", "add", receiver.url, "--secret", "-", "--format",
                      "json", "--at", "2025-01-02", stdin=SECRET + "\n"))  # fmt: skip
    register(tmp_path, "cus_1")
    assert receiver.got and all(g["verified"] for g in receiver.got)
    assert len(secrets(tmp_path)) == 1
    cli(tmp_path, "webhook", "remove", out["endpoint_id"])
    assert secrets(tmp_path) == []
    register(tmp_path, "cus_2", "2025-01-04")
    assert len(receiver.got) == 1
    (endpoint,) = as_json(cli(tmp_path, "webhook", "list", "--format", "json"))
    assert endpoint["status"] == "removed"
