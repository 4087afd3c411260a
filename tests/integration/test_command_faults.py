"""A bug (not a lost service) that fails on the same commands batch every time stops that
partition there, with the reason in `status`, after three tries; the other partitions go on,
and `serve` started again (the fix deployed) tries it again."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pipeline_support import Served, make_config

from bootstrap import Runtime
from consumers import kafka as k
from consumers.faults import FAILURES, command_faults
from consumers.health import snapshot
from domain import commands as c
from domain.catalog.tax_rate import TaxRate
from domain.identity import tax_rate_uuid
from domain.ledger.registry import HANDLERS
from schemas.codec import CommandCodec, command_key

COUNTRIES = ["DE", "FR", "GB", "US", "ES", "IT", "NL", "PL", "SE", "PT"]


def tax(country: str, rate: int, n: int) -> c.SetTaxRate:
    from datetime import UTC, datetime

    at = datetime(2025, 1, 1, tzinfo=UTC)
    return c.SetTaxRate(command_id=f"tax-{country}-{n}", at=at, country=country, rate_ppm=rate)


def test_a_bug_stops_its_partition_only_and_a_restart_tries_again(
    services: Any, pg_database_pair: Any, make_topic: Any, tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    config = make_config(services, pg_database_pair, make_topic, tmp_path / "data")
    real = HANDLERS[c.SetTaxRate]

    def buggy(ledger: Any, cmd: c.SetTaxRate, uow: Any) -> Any:
        if cmd.country == "LU":
            raise ZeroDivisionError("a bug in the ledger")
        return real(ledger, cmd, uow)

    monkeypatch.setitem(HANDLERS, c.SetTaxRate, buggy)
    served = Served(config, ["commands"])
    codec, producer = CommandCodec(), k.producer(config, client_id="pytest-faults")

    def send(command: c.SetTaxRate) -> int:
        future = producer.send(
            config.commands_topic, key=command_key(command), value=codec.encode(command)
        )
        return future.get(30).partition

    try:
        stuck = send(tax("LU", 1000, 1))
        after = send(tax("LU", 2000, 2))  # same key, same partition: behind the bug
        assert after == stuck
        others = {country: send(tax(country, 190000, 1)) for country in COUNTRIES}
        elsewhere = [country for country, p in others.items() if p != stuck]
        assert elsewhere, "every country landed on the stuck partition"
        deadline = time.monotonic() + 60
        while stuck not in command_faults(config.event_store, config.commands_topic):
            assert time.monotonic() < deadline, "the partition never stopped"
            assert served.thread.is_alive()
            time.sleep(0.2)
        with Runtime(config) as rt:
            deadline = time.monotonic() + 60
            while not all(rt.ledger.get(TaxRate, tax_rate_uuid(x)) for x in elsewhere):
                assert time.monotonic() < deadline, "the other partitions did not go on"
                time.sleep(0.2)
            assert rt.ledger.get(TaxRate, tax_rate_uuid("LU")) is None
            state = snapshot(rt, rejected=False)
        [row] = [r for r in state["commands"] if r["partition"] == stuck]
        assert row["stopped"]["reason"] == "ZeroDivisionError: a bug in the ledger"
        assert row["lag"] >= 2 and row["stopped"]["position"] == row["applied"]
        assert served.thread.is_alive()
    finally:
        served.close()
    # the fix deployed: serve started again tries the partition again
    monkeypatch.setitem(HANDLERS, c.SetTaxRate, real)
    FAILURES.clear()
    served = Served(config, ["commands"])
    try:
        with Runtime(config) as rt:
            deadline = time.monotonic() + 60
            while (rate := rt.ledger.get(TaxRate, tax_rate_uuid("LU"))) is None or (
                rate.rate_ppm != 2000
            ):
                assert time.monotonic() < deadline, "the stopped partition did not resume"
                time.sleep(0.2)
        assert command_faults(config.event_store, config.commands_topic) == {}
    finally:
        served.close()
        producer.close()
