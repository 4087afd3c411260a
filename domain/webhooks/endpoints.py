"""Webhook endpoints: where the ledger POSTs what happened, and which types each one wants.

One aggregate holds every endpoint of the ledger (there are few, and they change rarely), so
the worker deciding who receives an event reads the exact set from the event store in one
load. The endpoints' signing secrets are never here: they are configuration, kept encrypted
apart from the events (adapters/secrets.py), so neither the events nor Kafka ever hold one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID, uuid5

from domain import limits as lim
from domain.base import LedgerAggregate
from domain.errors import AlreadyExists, InvalidInput, InvalidTransition, NotFound
from domain.identity import NAMESPACE
from domain.webhooks.types import MAX_ENDPOINTS, check_types, check_url

ENDPOINTS_ID: UUID = uuid5(NAMESPACE, "webhook-endpoints:ledger")


class UnknownWebhookEndpoint(NotFound):
    code = "unknown_webhook_endpoint"


@dataclass(frozen=True)
class Endpoint:
    """One endpoint as added (and, once removed, when)."""

    endpoint_id: str
    url: str
    event_types: tuple[str, ...]  # empty: every type
    include_personal_data: bool
    added_at: datetime
    removed_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.removed_at is None

    def receives(self, webhook_type: str, at: datetime) -> bool:
        """Whether an event of `webhook_type` that took effect at `at` is for this endpoint:
        from the time it was added (inclusive) until it was removed, filtered by type."""
        if at < self.added_at or (self.removed_at is not None and at >= self.removed_at):
            return False
        return not self.event_types or webhook_type in self.event_types


class WebhookEndpoints(LedgerAggregate):
    """The ledger's webhook endpoints, active and removed (a removed id is never reused)."""

    class Started(LedgerAggregate.Created, LedgerAggregate.Event):
        def apply(self, registry: WebhookEndpoints) -> None:
            registry.endpoints = {}

    class EndpointAdded(LedgerAggregate.Event):
        endpoint_id: str
        url: str
        event_types: list[str]
        include_personal_data: bool

        def apply(self, registry: WebhookEndpoints) -> None:
            registry.endpoints[self.endpoint_id] = Endpoint(
                endpoint_id=self.endpoint_id,
                url=self.url,
                event_types=tuple(self.event_types),
                include_personal_data=self.include_personal_data,
                added_at=self.timestamp,
            )

    class EndpointRemoved(LedgerAggregate.Event):
        endpoint_id: str

        def apply(self, registry: WebhookEndpoints) -> None:
            old = registry.endpoints[self.endpoint_id]
            registry.endpoints[self.endpoint_id] = replace(old, removed_at=self.timestamp)

    if TYPE_CHECKING:
        endpoints: dict[str, Endpoint]

    @classmethod
    def start(cls, *, at: datetime, meta: dict) -> WebhookEndpoints:
        return cls._create(cls.Started, id=ENDPOINTS_ID, timestamp=at, meta=meta)

    def endpoint(self, endpoint_id: str) -> Endpoint:
        found = self.endpoints.get(endpoint_id)
        if found is None:
            raise UnknownWebhookEndpoint(f"unknown webhook endpoint '{endpoint_id}'")
        return found

    def active(self) -> list[Endpoint]:
        return [e for e in self.endpoints.values() if e.active]

    def receivers(self, webhook_type: str, at: datetime) -> list[Endpoint]:
        """The endpoints an event of `webhook_type` at `at` goes to, in the order added."""
        return [e for e in self.endpoints.values() if e.receives(webhook_type, at)]

    def add(
        self,
        *,
        endpoint_id: str,
        url: str,
        event_types: tuple[str, ...],
        include_personal_data: bool,
        at: datetime,
        meta: dict,
    ) -> None:
        lim.check_id(endpoint_id, "the endpoint id")
        check_url(url)
        check_types(event_types)
        if not isinstance(include_personal_data, bool):
            raise InvalidInput("include_personal_data must be true or false")
        if endpoint_id in self.endpoints:
            raise AlreadyExists(f"webhook endpoint '{endpoint_id}' already exists")
        if len(self.active()) >= MAX_ENDPOINTS:
            raise InvalidTransition(
                f"the ledger has {MAX_ENDPOINTS} webhook endpoints already: remove one first"
            )
        self.emit(
            self.EndpointAdded,
            at,
            meta,
            endpoint_id=endpoint_id,
            url=url,
            event_types=list(event_types),
            include_personal_data=include_personal_data,
        )

    def remove(self, endpoint_id: str, at: datetime, meta: dict) -> None:
        if not self.endpoint(endpoint_id).active:
            raise InvalidTransition(f"webhook endpoint '{endpoint_id}' was already removed")
        self.emit(self.EndpointRemoved, at, meta, endpoint_id=endpoint_id)
