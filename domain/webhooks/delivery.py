"""A webhook delivery: one event for one endpoint, its attempts, and what came of them.

The worker decides who receives an event (the endpoints of that moment) and records it as
`Scheduled`; each HTTP attempt comes back as `Attempted` (a command, after the POST), so the
delivery log is rebuilt from the events and a rebuild sends nothing. A delivery's id is
derived from the event and the endpoint, so deciding twice records one delivery; every
attempt and every replay sends the same body `id` (the event's), so a receiver that
deduplicates by id sees each event once.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID, uuid5

from domain.base import LedgerAggregate, iso
from domain.errors import InvalidInput, InvalidTransition, NotFound
from domain.identity import NAMESPACE, in_letters

PENDING = "pending"  # not tried yet, or replayed
SENT = "sent"  # a 2xx answer
FAILED = "failed"  # the last attempt failed; another is scheduled
GAVE_UP = "gave_up"  # failed for the whole retry window; `webhook replay` sends it again
STATUSES = (PENDING, SENT, FAILED, GAVE_UP)


class UnknownWebhookDelivery(NotFound):
    code = "unknown_webhook_delivery"


def delivery_id_for(event_id: str, endpoint_id: str) -> str:
    """`whd_<32 hex>`: the same event and endpoint always make the same delivery."""
    return in_letters("whd_", uuid5(NAMESPACE, f"webhook-delivery:{event_id}:{endpoint_id}"))


def delivery_uuid(delivery_id: str) -> UUID:
    return uuid5(NAMESPACE, f"webhook-delivery:{delivery_id}")


def body_id(event_id: str) -> str:
    """The `id` in the body, `evt_<32 hex>`: the ledger event's own id, stable for ever."""
    return "evt_" + event_id.replace("-", "")


def succeeded(status_code: int) -> bool:
    """A receiver's 2xx is success; anything else, or no answer (0), a failure."""
    return 200 <= status_code < 300


class WebhookDelivery(LedgerAggregate):
    """One event on its way to one endpoint."""

    class Scheduled(LedgerAggregate.Created, LedgerAggregate.Event):
        delivery_id: str
        endpoint_id: str
        event_id: str
        webhook_type: str
        source_event: str
        source_id: str
        source_version: int
        occurred_at: datetime
        customer_id: str | None

        def apply(self, delivery: WebhookDelivery) -> None:
            delivery.delivery_id = self.delivery_id
            delivery.endpoint_id = self.endpoint_id
            delivery.event_id = self.event_id
            delivery.webhook_type = self.webhook_type
            delivery.source_event = self.source_event
            delivery.source_id = self.source_id
            delivery.source_version = self.source_version
            delivery.occurred_at = self.occurred_at
            delivery.customer_id = self.customer_id
            delivery.status = PENDING
            delivery.attempts = 0
            delivery.round_attempts = 0
            delivery.round_started_at = None
            delivery.next_attempt_at = None

    class Attempted(LedgerAggregate.Event):
        delivery_id: str
        attempt: int
        attempted_at: datetime
        status_code: int
        error: str
        status: str
        next_attempt_at: datetime | None

        def apply(self, delivery: WebhookDelivery) -> None:
            delivery.attempts = self.attempt
            delivery.status = self.status
            delivery.next_attempt_at = self.next_attempt_at
            if delivery.round_started_at is None:
                delivery.round_started_at = self.attempted_at
                delivery.round_attempts = 0
            delivery.round_attempts += 1

    class Replayed(LedgerAggregate.Event):
        delivery_id: str

        def apply(self, delivery: WebhookDelivery) -> None:
            delivery.status = PENDING
            delivery.next_attempt_at = None
            delivery.round_started_at = None
            delivery.round_attempts = 0

    if TYPE_CHECKING:
        delivery_id: str
        endpoint_id: str
        event_id: str
        webhook_type: str
        source_event: str
        source_id: str
        source_version: int
        occurred_at: datetime
        customer_id: str | None
        status: str
        attempts: int
        round_attempts: int  # attempts since the last replay (or ever)
        round_started_at: datetime | None  # wall time of this round's first attempt
        next_attempt_at: datetime | None

    @classmethod
    def schedule(
        cls,
        *,
        delivery_id: str,
        endpoint_id: str,
        event_id: str,
        webhook_type: str,
        source_event: str,
        source_id: str,
        source_version: int,
        occurred_at: datetime,
        customer_id: str | None,
        at: datetime,
        meta: dict,
    ) -> WebhookDelivery:
        return cls._create(
            cls.Scheduled,
            id=delivery_uuid(delivery_id),
            timestamp=at,
            meta=meta,
            delivery_id=delivery_id,
            endpoint_id=endpoint_id,
            event_id=event_id,
            webhook_type=webhook_type,
            source_event=source_event,
            source_id=source_id,
            source_version=source_version,
            occurred_at=occurred_at,
            customer_id=customer_id,
        )

    def due(self, now: datetime) -> bool:
        """Whether the sender should try it now."""
        if self.status not in (PENDING, FAILED):
            return False
        return self.next_attempt_at is None or self.next_attempt_at <= now

    def check_attempt(self, attempt: int) -> None:
        if self.status == SENT:
            raise InvalidTransition(
                f"webhook delivery {self.delivery_id} was delivered already;"
                " 'webhook replay' sends it again"
            )
        if self.status == GAVE_UP:
            raise InvalidTransition(
                f"webhook delivery {self.delivery_id} was given up; 'webhook replay' sends it again"
            )
        if attempt != self.attempts + 1:
            raise InvalidTransition(
                f"attempt {attempt} of webhook delivery {self.delivery_id} is not the next"
                f" one ({self.attempts + 1}): another sender recorded it first"
            )

    def record_attempt(
        self,
        *,
        attempt: int,
        attempted_at: datetime,
        status_code: int,
        error: str,
        next_attempt_at: datetime | None,
        at: datetime,
        meta: dict,
    ) -> str:
        """Record one HTTP attempt; returns the status it leaves the delivery in."""
        self.check_attempt(attempt)
        if succeeded(status_code):
            status, next_attempt_at = SENT, None
        else:
            status = FAILED if next_attempt_at is not None else GAVE_UP
            if next_attempt_at is not None and next_attempt_at < attempted_at:
                raise InvalidInput(
                    f"the next attempt ({iso(next_attempt_at)}) cannot be before this one"
                    f" ({iso(attempted_at)})"
                )
        self.emit(
            self.Attempted,
            at,
            meta,
            delivery_id=self.delivery_id,
            attempt=attempt,
            attempted_at=attempted_at,
            status_code=status_code,
            error="" if status == SENT else error,
            status=status,
            next_attempt_at=next_attempt_at,
        )
        return status

    def replay(self, at: datetime, meta: dict) -> None:
        """Send it again, with the same body id, as a new round of attempts."""
        if self.status == PENDING:
            raise InvalidTransition(
                f"webhook delivery {self.delivery_id} is pending already: it is sent next"
            )
        self.emit(self.Replayed, at, meta, delivery_id=self.delivery_id)
