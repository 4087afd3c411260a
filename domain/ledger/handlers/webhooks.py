"""The webhooks commands' handlers: endpoints, deliveries and their attempts.

Nothing here sends anything: the worker (consumers/webhooks.py) POSTs after these events
are committed and reports each attempt back as `RecordWebhookAttempt`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from domain import commands as c
from domain.base import iso
from domain.errors import InvalidInput
from domain.ledger.registry import handles
from domain.ledger.unit_of_work import UnitOfWork
from domain.webhooks.delivery import (
    UnknownWebhookDelivery,
    WebhookDelivery,
    delivery_id_for,
    delivery_uuid,
)
from domain.webhooks.endpoints import (
    ENDPOINTS_ID,
    UnknownWebhookEndpoint,
    WebhookEndpoints,
)
from domain.webhooks.types import TYPES

if TYPE_CHECKING:
    from domain.ledger.service import Ledger


def _registry(uow: UnitOfWork, endpoint_id: str) -> WebhookEndpoints:
    return uow.get(
        WebhookEndpoints,
        ENDPOINTS_ID,
        lambda: UnknownWebhookEndpoint(f"unknown webhook endpoint '{endpoint_id}'"),
    )


def _delivery(uow: UnitOfWork, delivery_id: str) -> WebhookDelivery:
    return uow.get(
        WebhookDelivery,
        delivery_uuid(delivery_id),
        lambda: UnknownWebhookDelivery(f"unknown webhook delivery '{delivery_id}'"),
    )


@handles(c.AddWebhookEndpoint)
def add_webhook_endpoint(
    ledger: Ledger, cmd: c.AddWebhookEndpoint, uow: UnitOfWork
) -> dict[str, Any]:
    registry = uow.find(WebhookEndpoints, ENDPOINTS_ID)
    if registry is None:
        registry = uow.start(WebhookEndpoints.start(at=cmd.at, meta=cmd.meta()))
    registry.add(
        endpoint_id=cmd.endpoint_id,
        url=cmd.url,
        event_types=tuple(cmd.event_types),
        include_personal_data=cmd.include_personal_data,
        at=cmd.at,
        meta=cmd.meta(),
    )
    return {
        "endpoint_id": cmd.endpoint_id,
        "url": cmd.url,
        "event_types": list(cmd.event_types),
        "include_personal_data": cmd.include_personal_data,
    }


@handles(c.RemoveWebhookEndpoint)
def remove_webhook_endpoint(
    ledger: Ledger, cmd: c.RemoveWebhookEndpoint, uow: UnitOfWork
) -> dict[str, Any]:
    _registry(uow, cmd.endpoint_id).remove(cmd.endpoint_id, cmd.at, cmd.meta())
    return {"endpoint_id": cmd.endpoint_id, "removed": True}


@handles(c.ScheduleWebhookDelivery)
def schedule_webhook_delivery(
    ledger: Ledger, cmd: c.ScheduleWebhookDelivery, uow: UnitOfWork
) -> dict[str, Any]:
    """Record that an event goes to an endpoint; deciding it again records nothing more."""
    webhook_type = TYPES[cmd.source_event]
    endpoint = _registry(uow, cmd.endpoint_id).endpoint(cmd.endpoint_id)
    if not endpoint.receives(webhook_type, cmd.occurred_at):
        raise InvalidInput(
            f"webhook endpoint '{cmd.endpoint_id}' does not receive {webhook_type} events"
            f" of {iso(cmd.occurred_at)}"
        )
    delivery_id = delivery_id_for(cmd.event_id, cmd.endpoint_id)
    if uow.find(WebhookDelivery, delivery_uuid(delivery_id)) is not None:
        return {"delivery_id": delivery_id, "scheduled": False}
    uow.add(
        WebhookDelivery.schedule(
            delivery_id=delivery_id,
            endpoint_id=cmd.endpoint_id,
            event_id=cmd.event_id,
            webhook_type=webhook_type,
            source_event=cmd.source_event,
            source_id=cmd.source_id,
            source_version=cmd.source_version,
            occurred_at=cmd.occurred_at,
            customer_id=cmd.customer_id,
            at=cmd.at,
            meta=cmd.meta(),
        )
    )
    return {"delivery_id": delivery_id, "scheduled": True}


@handles(c.RecordWebhookAttempt)
def record_webhook_attempt(
    ledger: Ledger, cmd: c.RecordWebhookAttempt, uow: UnitOfWork
) -> dict[str, Any]:
    status = _delivery(uow, cmd.delivery_id).record_attempt(
        attempt=cmd.attempt,
        attempted_at=cmd.attempted_at,
        status_code=cmd.status_code,
        error=cmd.error,
        next_attempt_at=cmd.next_attempt_at,
        at=cmd.at,
        meta=cmd.meta(),
    )
    return {"delivery_id": cmd.delivery_id, "attempt": cmd.attempt, "status": status}


@handles(c.ReplayWebhookDelivery)
def replay_webhook_delivery(
    ledger: Ledger, cmd: c.ReplayWebhookDelivery, uow: UnitOfWork
) -> dict[str, Any]:
    delivery = _delivery(uow, cmd.delivery_id)
    endpoint = _registry(uow, delivery.endpoint_id).endpoint(delivery.endpoint_id)
    if not endpoint.active:
        raise InvalidInput(
            f"webhook endpoint '{endpoint.endpoint_id}' was removed: its deliveries are not"
            " sent again"
        )
    delivery.replay(cmd.at, cmd.meta())
    return {"delivery_id": cmd.delivery_id, "status": delivery.status}
