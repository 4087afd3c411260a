"""Command receipts: a command id applied once has no second effect."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from domain.base import LedgerAggregate
from domain.errors import IdempotencyConflict
from domain.topics import register_moved


@register_moved
class CommandReceipt(LedgerAggregate):
    """Proof a command was applied, so the same command id has no second effect.

    It keeps the digest of the request (`Command.request_digest`): the same id with the same
    request is a duplicate (the first outcome again), with another request an error, as
    Stripe treats idempotency keys. Receipts recorded before digests existed match anything.
    """

    class Applied(LedgerAggregate.Created, LedgerAggregate.Event):
        class_version = 2

        command: str
        outcome: dict[str, Any]
        digest: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["digest"] = None

        def apply(self, receipt: CommandReceipt) -> None:
            receipt.command = self.command
            receipt.outcome = dict(self.outcome)
            receipt.digest = self.digest

    if TYPE_CHECKING:
        command: str
        outcome: dict[str, Any]
        digest: str | None

    @classmethod
    def record(
        cls,
        *,
        id: UUID,
        command: str,
        outcome: dict[str, Any],
        digest: str,
        at: datetime,
        meta: dict,
    ) -> CommandReceipt:
        return cls._create(
            cls.Applied,
            id=id,
            timestamp=at,
            meta=meta,
            command=command,
            outcome=outcome,
            digest=digest,
        )

    def check_same_request(self, command_id: str, command: str, digest: str) -> None:
        if command != self.command or (self.digest is not None and digest != self.digest):
            raise IdempotencyConflict(
                f"command id {command_id} was already used for a different request"
                f" ({self.command}); use a new command id"
            )
