"""Customers: their personal data is only ever stored encrypted with their own key."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from domain import limits as lim
from domain.base import LedgerAggregate
from domain.errors import CustomerErased, InvalidInput

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
TOKEN = re.compile(r"^[A-Za-z0-9_\-]{3,255}$")
MAX_EMAIL = 254  # RFC 5321's limit on a forward path


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

    if TYPE_CHECKING:  # state set by the events; not constructor fields for eventsourcing
        customer_id: str
        country: str
        personal: str
        erased: bool

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


def personal_fields(
    name: str, email: str, payment_token: str, preferences: dict[str, Any]
) -> dict[str, Any]:
    return {
        "name": name,
        "email": email,
        "payment_token": payment_token,
        "preferences": dict(preferences),
    }
