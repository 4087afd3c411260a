"""The notifications commands: claiming and recording deliveries, reading the in-app inbox,
and the support log's notes. `domain.commands` re-exports them (its COMMANDS lists them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain import limits as lim
from domain.envelope import Command
from domain.errors import InvalidInput

NOTE_CHANNELS = ("email", "phone", "chat", "other")
DELIVERY_RESULTS = ("sent", "failed", "gave_up")


def _message(message_id: str, customer_id: str) -> None:
    lim.check_id(message_id, "message_id")
    lim.check_id(customer_id, "customer_id")


@dataclass(frozen=True, kw_only=True)
class ClaimDelivery(Command):
    """Claim an outbox message for sending on its channel: one claimer wins, until its lease
    runs out. The ledger decides here whether it goes out at all (preferences, erasure)."""

    message_id: str
    customer_id: str
    channel: str
    template: str
    claimer: str
    attempted_at: datetime
    lease_seconds: int = 60

    def check(self) -> None:
        from domain.notifications.messages import check_channel, check_template

        _message(self.message_id, self.customer_id)
        check_channel(self.channel)
        check_template(self.template)
        lim.check_id(self.claimer, "claimer")
        lim.check_time(self.attempted_at, "attempted_at")
        lim.check_count(self.lease_seconds, "lease_seconds", 1, 86_400)


@dataclass(frozen=True, kw_only=True)
class RecordDelivery(Command):
    """What a claimed attempt came to: sent (with the server's reference), failed, gave_up."""

    message_id: str
    customer_id: str
    attempt: int
    result: str
    attempted_at: datetime
    detail: str = ""
    permanent: bool = False

    def check(self) -> None:
        _message(self.message_id, self.customer_id)
        lim.check_count(self.attempt, "attempt", 1, 10_000)
        if self.result not in DELIVERY_RESULTS:
            raise InvalidInput(f"result must be one of {', '.join(DELIVERY_RESULTS)}")
        lim.check_time(self.attempted_at, "attempted_at")
        lim.check_text(self.detail, "detail", blank=True)
        if not isinstance(self.permanent, bool):
            raise InvalidInput("permanent must be true or false")


@dataclass(frozen=True, kw_only=True)
class MarkNotificationRead(Command):
    """The customer opened an in-app message."""

    message_id: str
    customer_id: str

    def check(self) -> None:
        _message(self.message_id, self.customer_id)


@dataclass(frozen=True, kw_only=True)
class RecordCustomerNote(Command):
    """A support interaction with a customer (the text is encrypted with their key)."""

    customer_id: str
    channel: str
    text: str

    def check(self) -> None:
        lim.check_id(self.customer_id, "customer_id")
        if self.channel not in NOTE_CHANNELS:
            raise InvalidInput(f"channel must be one of {', '.join(NOTE_CHANNELS)}")
        lim.check_text(self.text, "the note's text")
