"""The ledger's own books: coupons, tax rates, gapless invoice numbers, command receipts."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from domain.base import LedgerAggregate
from domain.errors import IdempotencyConflict, InvalidInput
from domain.invoicing import Coupon as CouponTerms


class Coupon(LedgerAggregate):
    class Defined(LedgerAggregate.Created, LedgerAggregate.Event):
        terms: dict[str, Any]

        def apply(self, coupon: Coupon) -> None:
            coupon.terms = CouponTerms.from_dict(self.terms)

    if TYPE_CHECKING:
        terms: CouponTerms

    @classmethod
    def define(cls, *, id: UUID, terms: CouponTerms, at: datetime, meta: dict) -> Coupon:
        return cls._create(cls.Defined, id=id, timestamp=at, meta=meta, terms=terms.to_dict())


class TaxRate(LedgerAggregate):
    """One country's tax rate, in parts per million; a change is a new event, never an edit."""

    class Set(LedgerAggregate.Created, LedgerAggregate.Event):
        country: str
        rate_ppm: int

        def apply(self, tax: TaxRate) -> None:
            tax.country = self.country
            tax.rate_ppm = self.rate_ppm

    class Changed(LedgerAggregate.Event):
        rate_ppm: int

        def apply(self, tax: TaxRate) -> None:
            tax.rate_ppm = self.rate_ppm

    if TYPE_CHECKING:
        country: str
        rate_ppm: int

    @staticmethod
    def check_rate(rate_ppm: int) -> None:
        if not isinstance(rate_ppm, int) or not 0 <= rate_ppm <= 1_000_000:
            raise InvalidInput("a tax rate is between 0% and 100%")

    @classmethod
    def set(cls, *, id: UUID, country: str, rate_ppm: int, at: datetime, meta: dict) -> TaxRate:
        cls.check_rate(rate_ppm)
        return cls._create(
            cls.Set, id=id, timestamp=at, meta=meta, country=country, rate_ppm=rate_ppm
        )

    def change(self, rate_ppm: int, at: datetime, meta: dict) -> None:
        self.check_rate(rate_ppm)
        self.emit(self.Changed, at, meta, rate_ppm=rate_ppm)


class InvoiceSequence(LedgerAggregate):
    """Gapless invoice numbers: numbers are taken in the transaction that uses them.

    A batch takes several numbers and records one `NumbersAllocated`; if the transaction
    fails, nothing was taken, so the retry reuses them — no gaps, no doubles.
    """

    class Started(LedgerAggregate.Created, LedgerAggregate.Event):
        def apply(self, seq: InvoiceSequence) -> None:
            seq.last = 0
            seq.taken = 0
            seq.taken_at = self.timestamp

    class NumbersAllocated(LedgerAggregate.Event):
        first: int
        last: int

        def apply(self, seq: InvoiceSequence) -> None:
            seq.last = self.last
            seq.taken = self.last
            seq.taken_at = self.timestamp

    if TYPE_CHECKING:
        last: int
        taken: int
        taken_at: datetime

    @classmethod
    def start(cls, *, id: UUID, at: datetime, meta: dict) -> InvoiceSequence:
        return cls._create(cls.Started, id=id, timestamp=at, meta=meta)

    def take(self, at: datetime) -> str:
        """The next number, for an invoice issued at `at` (never before the last one's)."""
        self.taken += 1
        self.taken_at = max(self.taken_at, at)
        return format_invoice_number(self.taken)

    def record_allocations(self, meta: dict) -> None:
        """Record the numbers taken in this transaction, as of the last one's issue time."""
        if self.taken > self.last:
            at = max(self.taken_at, self.modified_on)
            self.emit(self.NumbersAllocated, at, meta, first=self.last + 1, last=self.taken)


def format_invoice_number(n: int) -> str:
    return f"INV-{n:06d}"


def parse_invoice_number(number: str) -> int:
    if not number.startswith("INV-") or not number[4:].isdigit():
        raise InvalidInput(f"'{number}' is not an invoice number (INV-000001)")
    return int(number[4:])


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


class LedgerClock(LedgerAggregate):
    """The ledger's own notion of now: the latest effective time it has run up to.

    The book is kept in time order: a command takes effect no earlier than the clock, and a
    command dated later first moves the clock there, running whatever fell due on the way.
    Within one transaction the clock moves in memory (`now`) and one `Advanced` is recorded
    when the transaction is written (`record_advance`), as the invoice sequence does.
    """

    class Started(LedgerAggregate.Created, LedgerAggregate.Event):
        def apply(self, clock: LedgerClock) -> None:
            clock.now = self.timestamp

    class Advanced(LedgerAggregate.Event):
        def apply(self, clock: LedgerClock) -> None:
            clock.now = self.timestamp

    if TYPE_CHECKING:
        now: datetime

    @classmethod
    def start(cls, *, id: UUID, at: datetime, meta: dict) -> LedgerClock:
        return cls._create(cls.Started, id=id, timestamp=at, meta=meta)

    def move_to(self, at: datetime) -> None:
        """Move the clock forward in this transaction; recorded by `record_advance`."""
        if at > self.now:
            self.now = at

    def record_advance(self, meta: dict) -> None:
        if self.now > self.modified_on:
            self.emit(self.Advanced, self.now, meta)
