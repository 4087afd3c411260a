"""The access policy on the Kafka path (real broker and PostgreSQL): a command from a source
the policy forbids lands on the rejected topic with `forbidden` and records nothing, `cli`
(the Avro default of `source`) gets no door of its own, and the next allowed command applies."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from pipeline_support import Served, Upstream, consume_all, make_config

from bootstrap import Config, Runtime
from domain import commands as c
from domain.books.command_receipt import CommandReceipt
from domain.identity import receipt_uuid
from schemas import topics
from schemas.codec import CommandCodec

POLICY = """
[sources.crm]
commands = ["RegisterCustomer", "UpdateCustomer"]
[sources.catalog]
commands = ["DefinePlan", "SetTaxRate"]
"""


@pytest.fixture
def config(services, pg_database_pair, make_topic, tmp_path) -> Config:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    return make_config(services, pg_database_pair, make_topic, tmp_path / "kafka", policy=policy)


def at(day: int = 1) -> datetime:
    return datetime(2025, 1, day, tzinfo=UTC)


def tax(command_id: str, source: str, rate_ppm: int) -> c.SetTaxRate:
    return c.SetTaxRate(
        command_id=command_id,
        at=at(),
        actor="pytest",
        source=source,
        country="DE",  # one key: one partition, handled in this order
        rate_ppm=rate_ppm,
    )


def test_a_forbidden_source_is_rejected_with_forbidden_and_the_next_allowed_command_applies(
    config, caplog
) -> None:
    caplog.set_level(logging.INFO)
    codec = CommandCodec()
    from_crm = tax("tax-from-crm", "crm", 100000)  # crm may not set tax rates
    from_cli = tax("tax-from-cli", "cli", 110000)  # cli is not in the policy at all
    allowed = tax("tax-from-catalog", "catalog", 190000)

    served = Served(config, ["commands", "relay", "projections"])
    upstream = Upstream(config)
    try:
        with Runtime(config) as runtime:
            for command in (from_crm, from_cli, allowed):
                upstream.send(command)
            upstream.wait_applied(runtime.ledger)
            ledger = runtime.ledger
            assert ledger.get(CommandReceipt, receipt_uuid("tax-from-catalog")) is not None
            for refused in ("tax-from-crm", "tax-from-cli"):
                assert ledger.get(CommandReceipt, receipt_uuid(refused)) is None
            events = ledger.recorder.select_notifications(start=1, limit=100)
            meta = [ledger.mapper.to_domain_event(n).meta.get("command_id") for n in events]
            assert "tax-from-crm" not in meta and "tax-from-cli" not in meta
            assert "tax-from-catalog" in meta
    finally:
        upstream.close()
        served.close()

    ours = [r.getMessage() for r in caplog.records if r.name.startswith("consumers.")]
    assert ours[0] == (
        f"access policy {config.policy}: sources catalog (2 commands), crm (2 commands);"
        " personal data: nobody"
    )
    rejected = consume_all(config, config.rejected_topic, want=2)
    assert len(rejected) == 2
    by_id = {}
    for message in rejected:
        headers = {k: v.decode() for k, v in message.headers}
        by_id[headers[topics.H_COMMAND_ID]] = (message, headers)
    assert set(by_id) == {"tax-from-crm", "tax-from-cli"}
    message, headers = by_id["tax-from-crm"]
    assert headers[topics.H_ERROR_CODE] == "forbidden"
    assert headers[topics.H_REASON] == (
        f"source 'crm' may not issue SetTaxRate (policy {config.policy})"
    )
    assert headers[topics.H_COMMAND] == "SetTaxRate"
    assert message.value == codec.encode(from_crm)  # the original bytes, for a replay
    message, headers = by_id["tax-from-cli"]
    assert headers[topics.H_ERROR_CODE] == "forbidden"
    assert headers[topics.H_REASON] == (
        f"source 'cli' may not issue SetTaxRate (policy {config.policy})"
    )
    assert message.value == codec.encode(from_cli)


def test_without_a_policy_every_source_may_issue_every_command(config, caplog) -> None:
    caplog.set_level(logging.INFO)
    config = replace(config, policy=None)  # the same topics and databases, no policy
    served = Served(config, ["commands"])
    upstream = Upstream(config)
    try:
        with Runtime(config) as runtime:
            upstream.send(tax("tax-anyone", "crm", 100000))
            upstream.wait_applied(runtime.ledger)
            assert runtime.ledger.get(CommandReceipt, receipt_uuid("tax-anyone")) is not None
    finally:
        upstream.close()
        served.close()
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("consumers.")]
    assert ours[0] == (
        "no access policy (SUBLEDGER_POLICY unset): every source may issue every command"
    )
    assert consume_all(config, config.rejected_topic, want=1, timeout=3) == []
