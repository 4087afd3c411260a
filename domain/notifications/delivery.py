"""One message's delivery on one channel, as events: claimed, sent, failed, gave up.

The dispatcher sends nothing it has not claimed first, and a claim is a ledger command on
this aggregate: two dispatchers claiming the same message both write version N+1, the
store's optimistic concurrency lets one in, and the other, redone, finds it claimed. Once
`Sent` is recorded no claim is ever granted again, so a message acknowledged once is never
sent twice; a claim whose lease ran out (its dispatcher died mid-send) may be claimed again
and sent with the same Message-ID. Times of claims, sends and retries are the dispatcher's
wall clock (`attempted_at`), as the SMTP server sees them; the events' own timestamps are
the ledger clock, like every other event of the book.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID, uuid5

from domain.base import LedgerAggregate, iso
from domain.errors import InvalidInput, LedgerError
from domain.identity import NAMESPACE
from domain.notifications.messages import IN_APP

PENDING, SENT, FAILED, GAVE_UP = "pending", "sent", "failed", "gave_up"
SKIPPED, HANDED_OFF = "skipped", "handed_off"  # by preference; the webhooks worker's
STATUSES = (PENDING, SENT, FAILED, GAVE_UP, SKIPPED, HANDED_OFF)
FINAL = frozenset({SENT, GAVE_UP, SKIPPED, HANDED_OFF})


def delivery_uuid(message_id: str) -> UUID:
    return uuid5(NAMESPACE, f"delivery:{message_id}")


class AlreadyDelivered(LedgerError):
    code = "already_delivered"


class DeliveryInFlight(LedgerError):
    code = "delivery_in_flight"


class DeliveryNotDue(LedgerError):
    code = "delivery_not_due"


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """Retries with exponential backoff: `backoff_s`, then twice that each time, capped."""

    attempts: int = 12  # with the defaults below: about a day of retries
    backoff_s: int = 60
    max_backoff_s: int = 6 * 3600

    def retry_at(self, attempt: int, now: datetime) -> datetime | None:
        """When attempt `attempt + 1` may start, or None: no attempts left."""
        if attempt >= self.attempts:
            return None
        delay = min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s)
        return now + timedelta(seconds=delay)


class Delivery(LedgerAggregate):
    """The delivery of outbox message `message_id` on its channel."""

    class Opened(LedgerAggregate.Created, LedgerAggregate.Event):
        message_id: str
        customer_id: str
        channel: str
        template: str

        def apply(self, d: Delivery) -> None:
            d.message_id, d.customer_id = self.message_id, self.customer_id
            d.channel, d.template = self.channel, self.template
            d.status, d.attempts, d.read = PENDING, 0, False
            d.lease_until = d.next_attempt_at = None

    class Claimed(LedgerAggregate.Event):
        attempt: int
        claimer: str
        attempted_at: datetime
        lease_until: datetime

        def apply(self, d: Delivery) -> None:
            d.status, d.attempts, d.lease_until = PENDING, self.attempt, self.lease_until
            d.next_attempt_at = None

    class Sent(LedgerAggregate.Event):
        attempt: int
        reference: str
        attempted_at: datetime

        def apply(self, d: Delivery) -> None:
            d.status, d.lease_until, d.next_attempt_at = SENT, None, None
            d.attempts = max(d.attempts, self.attempt)

    class Failed(LedgerAggregate.Event):
        attempt: int
        error: str
        attempted_at: datetime
        next_attempt_at: datetime

        def apply(self, d: Delivery) -> None:
            d.status, d.lease_until, d.next_attempt_at = FAILED, None, self.next_attempt_at

    class GaveUp(LedgerAggregate.Event):
        attempt: int
        reason: str

        def apply(self, d: Delivery) -> None:
            d.status, d.lease_until, d.next_attempt_at = GAVE_UP, None, None

    class Skipped(LedgerAggregate.Event):
        reason: str

        def apply(self, d: Delivery) -> None:
            d.status = SKIPPED

    class HandedOff(LedgerAggregate.Event):
        webhook_type: str

        def apply(self, d: Delivery) -> None:
            d.status = HANDED_OFF

    class Read(LedgerAggregate.Event):
        def apply(self, d: Delivery) -> None:
            d.read = True

    if TYPE_CHECKING:
        message_id: str
        customer_id: str
        channel: str
        template: str
        status: str
        attempts: int
        lease_until: datetime | None
        next_attempt_at: datetime | None
        read: bool

    @classmethod
    def open(
        cls,
        *,
        message_id: str,
        customer_id: str,
        channel: str,
        template: str,
        at: datetime,
        meta: dict,
    ) -> Delivery:
        return cls._create(
            cls.Opened,
            id=delivery_uuid(message_id),
            timestamp=at,
            meta=meta,
            message_id=message_id,
            customer_id=customer_id,
            channel=channel,
            template=template,
        )

    # ---- the rules --------------------------------------------------------------------

    def check_same(self, customer_id: str, channel: str, template: str) -> None:
        if (customer_id, channel, template) != (self.customer_id, self.channel, self.template):
            raise InvalidInput(
                f"message {self.message_id} is {self.template} on {self.channel} for customer"
                f" '{self.customer_id}'"
            )

    def check_claimable(self, now: datetime) -> None:
        """A message may be claimed unless it is done, claimed by a live lease, or not due."""
        if self.status in FINAL:
            raise AlreadyDelivered(f"message {self.message_id} is already {self.status}")
        if self.lease_until is not None and now < self.lease_until:
            raise DeliveryInFlight(
                f"message {self.message_id} is being sent (claimed until {iso(self.lease_until)})"
            )
        if self.next_attempt_at is not None and now < self.next_attempt_at:
            raise DeliveryNotDue(
                f"message {self.message_id} is retried from {iso(self.next_attempt_at)}"
            )

    # ---- what happens to it -----------------------------------------------------------

    def claim(self, claimer: str, now: datetime, lease: timedelta, at: datetime, meta: dict) -> int:
        """Take the next attempt for `claimer` until `now + lease`; its number."""
        self.check_claimable(now)
        attempt = self.attempts + 1
        self.emit(
            self.Claimed,
            at,
            meta,
            attempt=attempt,
            claimer=claimer,
            attempted_at=now,
            lease_until=now + lease,
        )
        return attempt

    def deliver_in_place(self, now: datetime, at: datetime, meta: dict) -> None:
        """In-app: putting it in the customer's inbox is the delivery; nothing leaves."""
        self.check_claimable(now)
        self.emit(
            self.Sent, at, meta, attempt=self.attempts + 1, reference="inbox", attempted_at=now
        )

    def hand_off(self, webhook_type: str, at: datetime, meta: dict) -> None:
        """The webhooks worker sends this event (as `webhook_type`) to the endpoints."""
        self.emit(self.HandedOff, at, meta, webhook_type=webhook_type)

    def skip(self, reason: str, at: datetime, meta: dict) -> None:
        self.emit(self.Skipped, at, meta, reason=reason)

    def give_up(self, reason: str, at: datetime, meta: dict) -> None:
        self.emit(self.GaveUp, at, meta, attempt=self.attempts, reason=reason)

    def record(
        self,
        result: str,
        attempt: int,
        detail: str,
        now: datetime,
        policy: DeliveryPolicy,
        at: datetime,
        meta: dict,
        *,
        permanent: bool = False,
    ) -> bool:
        """Record what attempt `attempt` came to; False if that changes nothing (late news).

        A send is a fact whenever it is reported (a late acknowledgement included) unless
        one was already recorded; a failure counts only for the attempt still in flight,
        and the last allowed one, or a permanent one (the server refused the recipient),
        gives up.
        """
        if not 1 <= attempt <= self.attempts:
            raise InvalidInput(f"message {self.message_id} has no attempt {attempt}")
        if result == SENT:
            if self.status == SENT:
                return False
            self.emit(self.Sent, at, meta, attempt=attempt, reference=detail, attempted_at=now)
            return True
        if self.status != PENDING or attempt != self.attempts:
            return False  # an older attempt's news, or already settled
        retry = None if permanent or result == GAVE_UP else policy.retry_at(attempt, now)
        if retry is None:
            self.emit(self.GaveUp, at, meta, attempt=attempt, reason=detail)
        else:
            self.emit(
                self.Failed,
                at,
                meta,
                attempt=attempt,
                error=detail,
                attempted_at=now,
                next_attempt_at=retry,
            )
        return True

    def mark_read(self, at: datetime, meta: dict) -> bool:
        """An in-app message the customer opened; False if it was read already."""
        if self.channel != IN_APP:
            raise InvalidInput(f"message {self.message_id} is not an in-app message")
        if self.status != SENT:
            raise InvalidInput(f"message {self.message_id} is not in the inbox ({self.status})")
        if self.read:
            return False
        self.emit(self.Read, at, meta)
        return True
