"""`serve --workers webhooks` on the real broker and PostgreSQL, to a real HTTP receiver that
verifies every signature: retries keep the id; a restart and a rebuild send nothing again."""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

import pytest
from pipeline_support import Served, make_config, wait_projected
from test_webhooks_embedded import SECRET, Receiver

from adapters.secrets import secret_store
from bootstrap import Config, Runtime
from consumers import kafka as k
from consumers.projector import rebuild_from_store
from consumers.relay import relay_position
from domain import commands as c
from domain.webhooks.delivery import body_id
from projections import webhooks as model
from projections.webhooks import WebhooksProjection
from tests.unit.ledger_support import T, dump_tables

WORKERS = ("relay", "projections", "webhooks")
TABLES = ["webhook_endpoints", "webhook_deliveries", "webhook_attempts"]


@pytest.fixture
def config(services, pg_database_pair, make_topic, tmp_path) -> Config:
    return make_config(services, pg_database_pair, make_topic, tmp_path, webhook_retry_delay=0)


IDS = itertools.count(1)


def run(rt: Runtime, cls: type[c.Command], at: Any, **fields: Any) -> dict[str, Any]:
    command_id = f"wh-kafka-{uuid.uuid4().hex[:8]}-{next(IDS)}"
    return rt.ledger.execute(
        cls(command_id=command_id, at=at, actor="pytest", source="pytest", **fields)
    )


def settled(config: Config, rt: Runtime) -> bool:
    """Everything recorded is published, read by the webhooks group and projected, and no
    delivery is left open: the point after which nothing more can be sent."""
    head = rt.ledger.recorder.max_notification_id() or 0
    if relay_position(config) < head:
        return False
    for tp, end in k.end_offsets(config, config.events_topic, "pytest-barrier").items():
        name = f"webhooks:{config.events_topic}:{tp.partition}"
        done = rt.ledger.recorder.max_tracking_id(name)
        if end and (done is None or done < end - 1):
            return False
    wait_projected(config, rt)
    return not model.deliveries(rt.db, status="pending") + model.deliveries(rt.db, status="failed")


def wait_settled(config: Config, rt: Runtime, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not settled(config, rt):
        assert time.monotonic() < deadline, "webhooks did not settle"
        time.sleep(0.2)


def test_the_webhooks_worker_delivers_retries_with_the_same_id_and_never_twice(
    config: Config,
) -> None:
    receiver = Receiver()
    rt = Runtime(config)
    served = None
    try:
        store = secret_store(config.event_store, config.data_dir)
        assert store.put_new("we_crm", SECRET)
        store.close()
        run(rt, c.DefinePlan, T(2025, 1, 1), plan_id="basic", name="Basic", currency="USD",
            pricing={"model": "flat", "amount": 1000, "tiers": []})  # fmt: skip
        run(rt, c.AddWebhookEndpoint, T(2025, 1, 2), endpoint_id="we_crm", url=receiver.url)
        run(rt, c.RegisterCustomer, T(2025, 1, 3), customer_id="cus_1", name="Ada",
            email="ada@example.com", payment_token="tok_visa")  # fmt: skip
        run(rt, c.Subscribe, T(2025, 1, 3, 1), customer_id="cus_1", plan_id="basic",
            subscription_id="sub_1")  # fmt: skip
        (registered,) = [r for r in rt.feeder.records(0, 10_000) if r.name == "Customer.Registered"]
        event = body_id(registered.event_id)
        receiver.script[event] = [500, 502]

        served = Served(config, WORKERS)
        wait_settled(config, rt)
        served.close()
        served = None
        sent = receiver.ids()
        assert sent.count(event) == 3
        assert {"customer.created", "subscription.created", "invoice.created"} <= {
            g["type"] for g in receiver.got
        }
        assert all(g["verified"] for g in receiver.got)
        others = [i for i in sent if i != event]
        assert len(others) == len(set(others))  # each other event once
        log = {r["delivery_id"]: r for r in model.deliveries(rt.db)}
        assert {r["status"] for r in log.values()} == {"sent"}
        (first,) = [r for r in log.values() if r["event_id"] == registered.event_id]
        assert first["attempts"] == 3
        before = dump_tables(rt.db, TABLES)

        # a restart resumes from the recorded positions: nothing is sent again
        run(rt, c.RegisterCustomer, T(2025, 1, 4), customer_id="cus_2", name="Bob",
            email="bob@example.com", payment_token="tok_visa")  # fmt: skip
        served = Served(config, WORKERS)
        wait_settled(config, rt)
        served.close()
        served = None
        assert receiver.ids()[: len(sent)] == sent
        assert len(receiver.ids()) == len(sent) + 1
        assert receiver.got[-1]["data"]["customer_id"] == "cus_2"

        # the delivery log rebuilt from the store is the same, and sends nothing
        before = dump_tables(rt.db, TABLES)
        rebuild_from_store(config, rt.ledger, WebhooksProjection(), rt.db)
        assert dump_tables(rt.db, TABLES) == before
        served = Served(config, WORKERS)
        wait_settled(config, rt)
        assert len(receiver.ids()) == len(sent) + 1
        assert all(g["verified"] for g in receiver.got)
    finally:
        if served is not None:
            served.close()
        rt.close()
        receiver.close()
