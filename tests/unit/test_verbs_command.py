"""Commands the CLI builds read the event store, never the read models (which may lag)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from domain import commands as c
from projections import reports
from tests.unit.ledger_support import FLAT_1000, T
from verbs.app import App
from verbs.command import with_customer_key


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name in [n for n in os.environ if n.startswith("SUBLEDGER_")]:
        monkeypatch.delenv(name)  # the embedded default, whatever services ./dev test set up
    app = App(str(tmp_path / "book"))
    yield app
    app.close()


def record_without_feeding(app: App) -> None:
    """A subscription in the event store that the read models have not seen yet."""
    ledger = app.runtime.ledger  # opened and caught up now; nothing below feeds the read models
    meta = {"actor": "tester", "source": "pytest"}
    ledger.execute(
        c.DefinePlan(command_id="p", at=T(2024, 1, 1), plan_id="basic", name="Basic",
                     currency="USD", pricing=FLAT_1000, **meta)
    )  # fmt: skip
    ledger.execute(
        c.RegisterCustomer(command_id="r", at=T(2024, 1, 1), customer_id="cust-1", name="Ada",
                           email="ada@example.com", payment_token="tok_visa", **meta)
    )  # fmt: skip
    ledger.execute(
        c.Subscribe(command_id="s", at=T(2024, 1, 1), subscription_id="sub-1",
                    customer_id="cust-1", plan_id="basic", **meta)
    )  # fmt: skip


def test_a_published_command_is_keyed_by_the_customer_in_the_event_store_while_reads_lag(
    app: App,
) -> None:
    record_without_feeding(app)
    assert reports.subscription(app.runtime.db, "sub-1") is None  # the read model lags
    pause = c.Pause(
        command_id="pause-1", at=T(2024, 1, 5), actor="tester", source="cli",
        subscription_id="sub-1",
    )  # fmt: skip
    keyed = with_customer_key(app, pause)
    assert keyed.customer_id == "cust-1"
    assert (keyed.command_id, keyed.subscription_id, keyed.at) == (
        "pause-1",
        "sub-1",
        T(2024, 1, 5),
    )
    assert "customer_id" in keyed.implied  # filled in for the caller: not part of the request


def test_a_command_for_an_unknown_subscription_is_sent_as_asked(app: App) -> None:
    record_without_feeding(app)
    pause = c.Pause(
        command_id="pause-2", at=T(2024, 1, 5), actor="tester", source="cli",
        subscription_id="sub-unknown",
    )  # fmt: skip
    assert with_customer_key(app, pause) == pause


def test_a_customer_named_by_the_caller_is_kept(app: App) -> None:
    record_without_feeding(app)
    pause = c.Pause(
        command_id="pause-3", at=T(2024, 1, 5), actor="tester", source="cli",
        subscription_id="sub-1", customer_id="cust-2",
    )  # fmt: skip
    assert with_customer_key(app, pause) == pause  # the ledger checks the owner, not the CLI
