"""Secure transport, for real: the pipeline runs through the dev Kafka's SASL/SCRAM-SHA-512
listener (`ops/services env` names it in comments), a wrong password fails to connect with a
clear error instead of hanging, and every parameter of the event-store URL reaches psycopg."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pipeline_support import Served, Upstream, consume_all, make_config, wait_projected

from bootstrap import Config, Runtime
from consumers import kafka as k
from domain import commands as c
from domain.books.command_receipt import CommandReceipt
from domain.identity import receipt_uuid

REPO_ROOT = Path(__file__).resolve().parents[2]
SUBLEDGER = str(Path(sys.executable).with_name("subledger"))
SECURITY_KEYS = (
    "SUBLEDGER_KAFKA_BOOTSTRAP",
    "SUBLEDGER_KAFKA_SECURITY_PROTOCOL",
    "SUBLEDGER_KAFKA_SASL_MECHANISM",
    "SUBLEDGER_KAFKA_SASL_USERNAME",
    "SUBLEDGER_KAFKA_SASL_PASSWORD",
)


@pytest.fixture
def sasl(services: dict[str, str]) -> dict[str, str]:
    """The SASL listener's settings, as `ops/services env` prints them (comment lines) for
    the Kafka the tests use."""
    env = dict(os.environ)
    if not env.get("SUBLEDGER_KAFKA_SASL_PORT"):
        env["SUBLEDGER_KAFKA_PORT"] = services["kafka_bootstrap"].rpartition(":")[2]
    out = subprocess.run(
        [str(REPO_ROOT / "ops" / "services"), "env"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    found = dict(re.findall(r"^# (SUBLEDGER_KAFKA_\w+)=(\S+)$", out, re.MULTILINE))
    missing = [key for key in SECURITY_KEYS if key not in found]
    assert not missing, f"ops/services env does not print {missing}:\n{out}"
    assert found["SUBLEDGER_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert found["SUBLEDGER_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert found["SUBLEDGER_KAFKA_BOOTSTRAP"] != services["kafka_bootstrap"]
    return found


def overrides(sasl: dict[str, str], **changes: str) -> dict[str, str]:
    """Config fields for the SASL listener (optionally with a change, e.g. the password)."""
    fields = {key.removeprefix("SUBLEDGER_").lower(): value for key, value in sasl.items()}
    return {**fields, **changes}


def at(day: int) -> datetime:
    return datetime(2025, 1, day, tzinfo=UTC)


def test_the_pipeline_runs_through_the_sasl_listener(
    services, sasl, pg_database_pair, make_topic, tmp_path
) -> None:
    config = make_config(
        services, pg_database_pair, make_topic, tmp_path / "sasl", **overrides(sasl)
    )
    assert config.kafka_bootstrap == sasl["SUBLEDGER_KAFKA_BOOTSTRAP"]
    plan = c.DefinePlan(
        command_id="sasl-plan",
        at=at(1),
        plan_id="basic",
        name="Basic",
        currency="USD",
        pricing={"model": "flat", "amount": 1000, "tiers": []},
        interval="month",
        interval_count=1,
    )
    tax = c.SetTaxRate(command_id="sasl-tax", at=at(2), country="DE", rate_ppm=190000)

    served = Served(config, ["commands", "relay", "projections"])
    upstream = Upstream(config)
    try:
        with Runtime(config) as runtime:
            upstream.publish_in_order(runtime.ledger, [plan, tax])
            for command_id in ("sasl-plan", "sasl-tax"):
                assert runtime.ledger.get(CommandReceipt, receipt_uuid(command_id)) is not None
            wait_projected(config, runtime)  # the relay and projectors got there over SASL
            stored = runtime.ledger.recorder.select_notifications(start=1, limit=1000)
    finally:
        upstream.close()
        served.close()

    assert stored
    published = consume_all(config, config.events_topic, want=len(stored))
    assert len(published) == len(stored)


def test_a_wrong_password_fails_every_client_with_a_clear_error(sasl) -> None:
    config = Config(**overrides(sasl, kafka_sasl_password="not-the-password"))
    for build in (
        lambda: k.producer(config, bootstrap_timeout_ms=3000),
        lambda: k.consumer(config, None, bootstrap_timeout_ms=3000),
        lambda: k.admin(config, bootstrap_timeout_ms=3000),
    ):
        with pytest.raises(k.KafkaLoginFailed) as caught:
            build()
        message = str(caught.value)
        assert "SUBLEDGER_KAFKA_SASL_PASSWORD" in message
        assert sasl["SUBLEDGER_KAFKA_BOOTSTRAP"] in message
        assert "not-the-password" not in message


def test_serve_with_a_wrong_password_stops_with_one_line(sasl, pg_database_pair, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    env.update(sasl)
    env.update(
        SUBLEDGER_KAFKA_SASL_PASSWORD="not-the-password",
        SUBLEDGER_DATA_DIR=str(tmp_path / "data"),
        SUBLEDGER_EVENT_STORE=pg_database_pair.event_store_url,
        SUBLEDGER_READ_DB=pg_database_pair.read_db_url,
        SUBLEDGER_COMMANDS_TOPIC=f"pytest-sasl-{uuid.uuid4().hex[:8]}",
    )
    # bounded by kafka-python's bootstrap timeout (30 s): no hang
    proc = subprocess.run(
        [SUBLEDGER, "serve", "--workers", "commands"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "refused the SASL_PLAINTEXT login" in last
    assert "not-the-password" not in proc.stderr + proc.stdout


def test_every_event_store_url_parameter_reaches_the_drivers(services, pg_database_pair, tmp_path):
    name = f"subledger-probe-{uuid.uuid4().hex[:8]}"
    query = f"application_name={name}&connect_timeout=9&sslmode=disable"
    url = f"{pg_database_pair.event_store_url}?{query}"
    read = f"{pg_database_pair.read_db_url}?application_name={name}-read"
    config = Config(data_dir=tmp_path, event_store=url, read_db=read)
    with Runtime(config) as runtime:
        # eventsourcing's pool (psycopg 3), the key store and the read DB (psycopg2)
        with runtime.ledger.factory.datastore.get_connection() as conn:
            row = conn.execute("SELECT current_setting('application_name')").fetchone()
            assert list(row.values()) == [name]
            used = conn.info.get_parameters()
            assert (used["sslmode"], used["connect_timeout"]) == ("disable", "9")
        with runtime.keys._conn.cursor() as cur:
            cur.execute("SELECT current_setting('application_name')")
            assert cur.fetchone() == (name,)
        assert runtime.keys._conn.get_dsn_parameters()["sslmode"] == "disable"
        rows = runtime.db.query("SELECT current_setting('application_name') AS name")
        assert rows == [{"name": f"{name}-read"}]
