"""Secure transport settings: the Kafka clients' TLS/SASL keyword arguments come from Config
alone, and every parameter of a PostgreSQL URL reaches the driver (no service needed)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from adapters import postgres
from bootstrap import Config
from consumers import kafka as k

SASL_ENV = {
    "SUBLEDGER_KAFKA_BOOTSTRAP": "127.0.0.1:9094",
    "SUBLEDGER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "SUBLEDGER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "SUBLEDGER_KAFKA_SASL_USERNAME": "ledger",
    "SUBLEDGER_KAFKA_SASL_PASSWORD": "s3cret-pass",
}


def test_without_settings_clients_talk_plaintext_and_nothing_else() -> None:
    config = Config.from_env({"SUBLEDGER_KAFKA_BOOTSTRAP": "127.0.0.1:9092"})
    assert k.security(config) == {"security_protocol": "PLAINTEXT"}
    assert k._base(config, "x") == {
        "bootstrap_servers": "127.0.0.1:9092",
        "client_id": "x",
        "security_protocol": "PLAINTEXT",
    }


def test_sasl_ssl_settings_from_the_environment_become_kafka_python_arguments(
    tmp_path: Path,
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    config = Config.from_env({**SASL_ENV, "SUBLEDGER_KAFKA_SSL_CAFILE": str(ca)})
    assert k.security(config) == {
        "security_protocol": "SASL_SSL",
        "ssl_cafile": str(ca),
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "ledger",
        "sasl_plain_password": "s3cret-pass",
    }
    assert "s3cret-pass" not in repr(config)  # a logged Config does not give it away


def test_lower_case_names_are_accepted_and_plain_is_the_default_mechanism() -> None:
    env = {**SASL_ENV, "SUBLEDGER_KAFKA_SECURITY_PROTOCOL": "sasl_plaintext"}
    del env["SUBLEDGER_KAFKA_SASL_MECHANISM"]
    settings = k.security(Config.from_env(env))
    assert settings["security_protocol"] == "SASL_PLAINTEXT"
    assert settings["sasl_mechanism"] == "PLAIN"


def test_ssl_without_sasl_takes_only_the_ca(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    config = Config(kafka_security_protocol="SSL", kafka_ssl_cafile=str(ca))
    assert k.security(config) == {"security_protocol": "SSL", "ssl_cafile": str(ca)}


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"SUBLEDGER_KAFKA_SECURITY_PROTOCOL": "TLS"}, "SUBLEDGER_KAFKA_SECURITY_PROTOCOL"),
        ({"SUBLEDGER_KAFKA_SASL_MECHANISM": "GSSAPI"}, "SUBLEDGER_KAFKA_SASL_MECHANISM"),
        ({"SUBLEDGER_KAFKA_SASL_PASSWORD": ""}, "SUBLEDGER_KAFKA_SASL_PASSWORD"),
        ({"SUBLEDGER_KAFKA_SASL_USERNAME": ""}, "SUBLEDGER_KAFKA_SASL_USERNAME"),
        ({"SUBLEDGER_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}, "SASL_PLAINTEXT or SASL_SSL"),
        ({"SUBLEDGER_KAFKA_SECURITY_PROTOCOL": "SSL"}, "SASL_PLAINTEXT or SASL_SSL"),
        ({"SUBLEDGER_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, "not a readable file"),
    ],
)
def test_a_bad_combination_is_one_line_naming_the_setting(changes, words) -> None:
    config = Config.from_env({**SASL_ENV, **changes})
    with pytest.raises(ValueError) as caught:
        k.security(config)
    message = str(caught.value)
    assert words in message
    assert "\n" not in message
    assert "s3cret-pass" not in message


def test_a_ca_file_with_a_protocol_without_tls_is_refused(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    config = Config(kafka_security_protocol="SASL_PLAINTEXT", kafka_ssl_cafile=str(ca))
    with pytest.raises(ValueError, match="SUBLEDGER_KAFKA_SSL_CAFILE needs"):
        k.security(config)


def test_every_builder_refuses_a_bad_combination_before_connecting() -> None:
    # port 1: were the settings ignored, the client would try (and time out) instead
    config = Config(kafka_bootstrap="127.0.0.1:1", kafka_security_protocol="SASL_SSL")
    for build in (
        lambda: k.producer(config),
        lambda: k.consumer(config, None),
        lambda: k.admin(config),
    ):
        with pytest.raises(ValueError, match="SUBLEDGER_KAFKA_SASL_USERNAME"):
            build()


URL = "postgresql://u:p%40ss@db.example:6543/events"


def test_consumers_let_the_broker_hold_a_fetch_that_finds_nothing_only_briefly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kafka-python sends one fetch at a time to a broker: a fetch held for a drained
    partition held back the others' records too (500 ms by default)."""
    made: list[dict] = []
    monkeypatch.setattr(k, "_open", lambda make, settings: made.append(settings))
    config = Config(kafka_bootstrap="127.0.0.1:1")
    k.consumer(config, None)
    k.consumer(config, "group", max_poll_records=10)
    assert [m["fetch_max_wait_ms"] for m in made] == [k.FETCH_WAIT_MS] * 2
    assert k.FETCH_WAIT_MS <= 100


def test_a_plain_event_store_url_keeps_eventsourcing_s_own_factory() -> None:
    env = Config(event_store=URL).ledger_env()
    assert env["PERSISTENCE_MODULE"] == "eventsourcing.postgres"
    assert postgres.PARAMETERS_KEY not in env
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"]) == ("db.example", "6543")
    assert env["POSTGRES_PASSWORD"] == "p@ss"


def test_every_event_store_url_parameter_reaches_the_driver_s_keyword_arguments() -> None:
    query = "sslmode=verify-full&sslrootcert=/etc/ca.pem&connect_timeout=7&application_name=a%20b"
    url = f"{URL}?{query}"
    env = Config(event_store=url).ledger_env()
    assert env["PERSISTENCE_MODULE"] == postgres.EVENT_STORE_FACTORY
    assert dict(parse_qsl(env[postgres.PARAMETERS_KEY])) == {
        "sslmode": "verify-full",
        "sslrootcert": "/etc/ca.pem",
        "connect_timeout": "7",
        "application_name": "a b",
    }
    assert env["POSTGRES_CONNECT_TIMEOUT"] == "7"
    assert env["POSTGRES_DBNAME"] == "events"  # the path, without the query

    from eventsourcing.persistence import InfrastructureFactory

    factory = InfrastructureFactory.construct({**env, "CREATE_TABLE": "n"})
    try:
        kwargs = factory.datastore.pool.kwargs
        assert kwargs["sslmode"] == "verify-full"
        assert kwargs["sslrootcert"] == "/etc/ca.pem"
        assert kwargs["application_name"] == "a b"
        assert (kwargs["host"], kwargs["port"], kwargs["dbname"]) == (
            "db.example",
            "6543",
            "events",
        )
    finally:
        factory.close()


@pytest.mark.parametrize("setting", ["SUBLEDGER_EVENT_STORE", "SUBLEDGER_READ_DB"])
def test_an_unknown_url_parameter_is_one_line_naming_the_setting(setting: str) -> None:
    with pytest.raises(ValueError) as caught:
        postgres.url_parameters(f"{URL}?sslmod=require", setting)
    message = str(caught.value)
    assert setting in message and "'sslmod'" in message
    assert "\n" not in message and "p%40ss" not in message and "p@ss" not in message


def test_an_unknown_event_store_parameter_fails_at_start_up() -> None:
    with pytest.raises(ValueError, match=r"SUBLEDGER_EVENT_STORE .*'ssl'"):
        Config(event_store=f"{URL}?ssl=true").ledger_env()


def test_the_psycopg2_paths_check_the_url_before_connecting() -> None:
    # db.example is never reached: the typo is caught first
    with pytest.raises(ValueError, match="'timeout'"):
        postgres.connect(f"{URL}?timeout=3")


def test_the_read_db_checks_its_url_before_connecting() -> None:
    from projections.db import ReadDB

    with pytest.raises(ValueError, match=r"SUBLEDGER_READ_DB .*'sslmod'"):
        ReadDB(f"{URL}?sslmod=require")


def test_serve_env_gives_a_subprocess_the_same_stores_and_topics(tmp_path) -> None:
    """`Config.serve_env` is `from_env`'s inverse for what a `serve` subprocess must share."""
    config = Config.from_env(
        {
            "SUBLEDGER_DATA_DIR": str(tmp_path),
            "SUBLEDGER_EVENT_STORE": "postgresql://u@h:5/e",
            "SUBLEDGER_READ_DB": "postgresql://u@h:5/r",
            "SUBLEDGER_KAFKA_BOOTSTRAP": "h:9092",
            "SUBLEDGER_COMMANDS_TOPIC": "c",
            "SUBLEDGER_EVENTS_TOPIC": "e",
            "SUBLEDGER_REJECTED_TOPIC": "r",
            "SUBLEDGER_GROUP_PREFIX": "g",
        }
    )
    again = Config.from_env(config.serve_env())
    for field in ("data_dir", "event_store", "read_db", "kafka_bootstrap", "commands_topic",
                  "events_topic", "rejected_topic", "group_prefix"):  # fmt: skip
        assert getattr(again, field) == getattr(config, field), field
