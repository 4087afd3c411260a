"""Coupons: the discount terms a subscription can be given, defined once and never edited."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from domain.base import LedgerAggregate
from domain.invoicing import Coupon as CouponTerms
from domain.topics import register_moved


@register_moved
class Coupon(LedgerAggregate):
    """A coupon code and its terms (`domain.invoicing.Coupon` computes the discount)."""

    class Defined(LedgerAggregate.Created, LedgerAggregate.Event):
        terms: dict[str, Any]

        def apply(self, coupon: Coupon) -> None:
            coupon.terms = CouponTerms.from_dict(self.terms)

    if TYPE_CHECKING:
        terms: CouponTerms

    @classmethod
    def define(cls, *, id: UUID, terms: CouponTerms, at: datetime, meta: dict) -> Coupon:
        return cls._create(cls.Defined, id=id, timestamp=at, meta=meta, terms=terms.to_dict())
