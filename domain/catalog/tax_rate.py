"""Tax rates by country, in parts per million, so tax never passes through a float."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from domain.base import LedgerAggregate
from domain.errors import InvalidInput
from domain.topics import register_moved


@register_moved
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
