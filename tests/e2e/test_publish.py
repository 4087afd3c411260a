"""`--publish` as a user runs it, on the real PostgreSQL and Kafka.

No projector runs here, so the read models never see the subscription: a command built
from them would be keyed by the subscription, not its customer. It must come from the store.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from schemas.codec import CommandCodec

SUBLEDGER = str(Path(sys.executable).with_name("subledger"))


@pytest.fixture
def env(services, pg_database_pair, make_topic, create_topic, tmp_path) -> dict[str, str]:
    """A user's environment naming a fresh event store, read DB and topics."""
    commands = create_topic(make_topic("cmd"), partitions=3)
    base = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    return {
        **base,
        "COLUMNS": "200",
        "SUBLEDGER_ACTOR": "e2e-user",
        "SUBLEDGER_DATA_DIR": str(tmp_path / "book"),
        "SUBLEDGER_EVENT_STORE": pg_database_pair.event_store_url,
        "SUBLEDGER_READ_DB": pg_database_pair.read_db_url,
        "SUBLEDGER_KAFKA_BOOTSTRAP": services["kafka_bootstrap"],
        "SUBLEDGER_COMMANDS_TOPIC": commands,
        "SUBLEDGER_EVENTS_TOPIC": create_topic(make_topic("evt"), partitions=3),
        "SUBLEDGER_REJECTED_TOPIC": create_topic(make_topic("rej"), partitions=1),
        "SUBLEDGER_GROUP_PREFIX": f"{commands}-g",
        "SUBLEDGER_LOG_LEVEL": "WARNING",
    }


def run(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [SUBLEDGER, *args], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
        timeout=300,
    )  # fmt: skip
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def subscribed(env: dict[str, str]) -> None:
    """sub-1 of cust-1, recorded in the event store (applied here, not through Kafka)."""
    at = ("--at", "2025-01-01")
    run(env, "plan", "define", "basic", "--name", "Basic", "--price", "10.00",
        "--currency", "USD", *at)  # fmt: skip
    run(env, "customer", "register", "cust-1", "--name", "Ada", "--email", "ada@example.com",
        "--payment-token", "tok_visa", *at)  # fmt: skip
    run(env, "subscribe", "cust-1", "basic", "--subscription-id", "sub-1", *at)
    lagging = run(env, "subscription", "show", "sub-1", check=False)
    assert lagging.stderr == "error: unknown subscription 'sub-1'\n"  # the read model lags


def produced(env: dict[str, str], count: int) -> list:
    """The records on the commands topic, from the beginning."""
    topic = env["SUBLEDGER_COMMANDS_TOPIC"]
    consumer = KafkaConsumer(
        bootstrap_servers=env["SUBLEDGER_KAFKA_BOOTSTRAP"], enable_auto_commit=False
    )
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        records: list = []
        deadline = time.monotonic() + 60
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records += batch
        return records
    finally:
        consumer.close()


def test_a_published_command_is_keyed_by_the_customer_the_event_store_names(env) -> None:
    subscribed(env)
    proc = run(env, "pause", "sub-1", "--publish", "--command-id", "pause-1", "--at", "2025-01-10")
    assert proc.stdout == "pause-1\n"
    [record] = produced(env, 1)
    assert record.key == b"cust-1"
    command = CommandCodec().decode(record.value)
    assert (command.command_id, command.subscription_id) == ("pause-1", "sub-1")
    assert command.customer_id == "cust-1"


def test_publish_and_wait_reports_what_the_ledger_did(env, tmp_path: Path) -> None:
    subscribed(env)
    with open(tmp_path / "serve.log", "wb") as log:
        serve = subprocess.Popen(
            [SUBLEDGER, "serve", "--workers", "commands", "--clock", "manual"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        proc = run(env, "pause", "sub-1", "--publish", "--wait", "--timeout", "240",
                   "--command-id", "pause-2", "--at", "2025-01-10", "--format", "json")  # fmt: skip
        outcome = json.loads(proc.stdout)
        assert (outcome["command_id"], outcome["outcome"]) == ("pause-2", "applied")
        history = json.loads(run(env, "history", "sub-1", "--format", "json").stdout)
        assert history[-1]["command_id"] == "pause-2"
        assert history[-1]["status"] == "paused"

        refused = run(env, "resume", "sub-nope", "--publish", "--wait", "--timeout", "240",
                      "--at", "2025-01-11", check=False)  # fmt: skip
        assert refused.returncode == 1
        assert refused.stderr.startswith("error: rejected: ")
        assert len(refused.stderr.splitlines()) == 1
        assert "sub-nope" in refused.stderr
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(120) == 0, (tmp_path / "serve.log").read_text()


def test_status_before_serve_ever_ran_says_nothing_is_behind(env: dict[str, str]) -> None:
    """A Kafka-mode book nobody served yet: every figure zero, nothing stopped, no worker."""
    state = json.loads(run(env, "status", "--format", "json").stdout)
    assert state["mode"] == "kafka" and state["head"] == 0
    assert [(r["partition"], r["lag"], r["stopped"]) for r in state["commands"]] == [
        (0, 0, None),
        (1, 0, None),
        (2, 0, None),
    ]
    assert state["relay"] == {"published": 0, "head": 0, "lag": 0}
    assert (state["rejected"], state["workers"], state["clock"]) == ({}, [], None)
    assert all(p["lag"] == 0 and p["stopped"] is None for p in state["projections"])
