"""Customers: their personal data is only ever stored encrypted with their own key."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from domain import limits as lim
from domain.base import LedgerAggregate
from domain.errors import CustomerErased, InvalidAmount, InvalidInput

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
TOKEN = re.compile(r"^[A-Za-z0-9_\-]{3,255}$")
MAX_EMAIL = 254  # RFC 5321's limit on a forward path
# why credit is granted: `credit grant`, a downgrade's net credit, a credit
# note on an invoice paid outside the gateway, a refund the gateway could not make, and
# credit an earlier version kept on a subscription, moved to its customer
CREDIT_SOURCES = ("grant", "proration", "credit_note", "refund_failed", "migration")


def check_profile(
    *,
    name: str | None,
    email: str | None,
    country: str | None,
    payment_token: str | None,
    preferences: dict[str, str] | None = None,
) -> None:
    """A customer's details, each in range; errors name the field, never quote the value."""
    if name is not None:
        lim.check_text(name, "the customer's name", limit=lim.MAX_ID)
    if email is not None:
        lim.check_text(email, "email", limit=MAX_EMAIL)
        if not EMAIL.match(email):
            raise InvalidInput("email is not an email address (name@example.com)")
    if country is not None:
        lim.check_country(country)
    if payment_token is not None and (
        not isinstance(payment_token, str) or not TOKEN.match(payment_token)
    ):
        raise InvalidInput(
            "payment_token must be a gateway token such as tok_visa"
            " (3-255 letters, digits, '_' or '-')"
        )
    if preferences is not None:
        if not isinstance(preferences, dict) or len(preferences) > lim.MAX_PREFERENCES:
            raise InvalidInput(f"preferences hold at most {lim.MAX_PREFERENCES} KEY=VALUE pairs")
        for key, value in preferences.items():
            lim.check_id(key, "a preference's key")
            lim.check_text(value, f"preference '{key}'", limit=lim.MAX_ID, blank=True)


class Customer(LedgerAggregate):
    """A customer; `personal` is ciphertext (name, email, payment token, preferences)."""

    class Registered(LedgerAggregate.Created, LedgerAggregate.Event):
        customer_id: str
        country: str
        personal: str

        def apply(self, customer: Customer) -> None:
            customer.customer_id = self.customer_id
            customer.country = self.country
            customer.personal = self.personal
            customer.erased = False
            customer.credit = {}  # the balance per currency

    class Updated(LedgerAggregate.Event):
        customer_id: str
        country: str
        personal: str

        def apply(self, customer: Customer) -> None:
            customer.country = self.country
            customer.personal = self.personal

    class Erased(LedgerAggregate.Event):
        customer_id: str

        def apply(self, customer: Customer) -> None:
            customer.erased = True
            customer.personal = ""

    # ---- the customer's credit balance, per currency ----

    class CreditGranted(LedgerAggregate.Event):
        """Credit added: a grant, a downgrade's net credit, a credit note, a failed refund."""

        customer_id: str
        currency: str
        amount: int
        reason: str
        source: str  # one of CREDIT_SOURCES
        reference: str  # what it came from: invoice, credit note, subscription ("" if none)
        balance_after: int

        def apply(self, customer: Customer) -> None:
            customer.credit = {**customer.credit, self.currency: self.balance_after}

    class CreditApplied(LedgerAggregate.Event):
        """Credit spent on one of the customer's invoices, whichever subscription it is for."""

        customer_id: str
        currency: str
        amount: int
        invoice: str
        balance_after: int

        def apply(self, customer: Customer) -> None:
            customer.credit = {**customer.credit, self.currency: self.balance_after}

    class NoteRecorded(LedgerAggregate.Event):
        """A support interaction; `note` is ciphertext under the customer's own key."""

        customer_id: str
        channel: str  # email | phone | chat | other
        note: str

    if TYPE_CHECKING:  # state set by the events; not constructor fields for eventsourcing
        customer_id: str
        country: str
        personal: str
        erased: bool
        credit: dict[str, int]  # currency -> balance in minor units

    @classmethod
    def register(
        cls, *, id: UUID, customer_id: str, country: str, personal: str, at: datetime, meta: dict
    ) -> Customer:
        lim.check_id(customer_id, "customer_id")
        return cls._create(
            cls.Registered,
            id=id,
            timestamp=at,
            meta=meta,
            customer_id=customer_id,
            country=country,
            personal=personal,
        )

    def check_not_erased(self) -> None:
        if self.erased:
            raise CustomerErased(f"customer '{self.customer_id}' has been erased")

    def update(self, *, country: str, personal: str, at: datetime, meta: dict) -> None:
        self.check_not_erased()
        self.emit(
            self.Updated, at, meta, customer_id=self.customer_id, country=country, personal=personal
        )

    def erase(self, at: datetime, meta: dict) -> None:
        self.check_not_erased()
        self.emit(self.Erased, at, meta, customer_id=self.customer_id)

    # ---- credit ----

    def credit_in(self, currency: str) -> int:
        return self.credit.get(currency, 0)

    def check_grant(self, currency: str, amount: int) -> None:
        """A balance always fits the books: at most MAX_INVOICE minor units per currency."""
        lim.check_amount(amount, "the credit's amount", low=1, high=lim.MAX_INVOICE)
        if self.credit_in(currency) + amount > lim.MAX_INVOICE:
            raise InvalidAmount(
                f"customer '{self.customer_id}' would hold more than {lim.MAX_INVOICE:,}"
                f" minor units of {currency} credit"
            )

    def grant_credit(
        self,
        *,
        currency: str,
        amount: int,
        reason: str,
        source: str,
        reference: str,
        at: datetime,
        meta: dict,
    ) -> None:
        """Add `amount` to the balance in `currency` (see CREDIT_SOURCES for why it comes)."""
        if source not in CREDIT_SOURCES:
            raise InvalidInput(f"credit source must be one of {', '.join(CREDIT_SOURCES)}")
        lim.check_amount(amount, "the credit's amount", low=1, high=lim.INT64_MAX)
        self.emit(
            self.CreditGranted,
            self.credit_time(at),
            meta,
            customer_id=self.customer_id,
            currency=currency,
            amount=amount,
            reason=reason,
            source=source,
            reference=reference,
            balance_after=self.credit_in(currency) + amount,
        )

    def apply_credit(
        self, *, currency: str, amount: int, invoice: str, at: datetime, meta: dict
    ) -> None:
        """Spend `amount` of the balance on `invoice` (never more than the balance)."""
        if not 0 < amount <= self.credit_in(currency):
            raise InvalidAmount(
                f"customer '{self.customer_id}' has {self.credit_in(currency):,} minor units of"
                f" {currency} credit, not {amount:,}"
            )
        self.emit(
            self.CreditApplied,
            self.credit_time(at),
            meta,
            customer_id=self.customer_id,
            currency=currency,
            amount=amount,
            invoice=invoice,
            balance_after=self.credit_in(currency) - amount,
        )

    def credit_time(self, at: datetime) -> datetime:
        """Credit moves with billing done at `at`; overdue work done after a later change to
        the customer is recorded as of that change, the way the invoice sequence does it."""
        return max(at, self.modified_on)

    def record_note(self, *, channel: str, note: str, at: datetime, meta: dict) -> None:
        """Keep a support interaction (the support log); `note` is already encrypted."""
        self.check_not_erased()
        self.emit(
            self.NoteRecorded, at, meta, customer_id=self.customer_id, channel=channel, note=note
        )


def personal_fields(
    name: str, email: str, payment_token: str, preferences: dict[str, Any]
) -> dict[str, Any]:
    return {
        "name": name,
        "email": email,
        "payment_token": payment_token,
        "preferences": dict(preferences),
    }
