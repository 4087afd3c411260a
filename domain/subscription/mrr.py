"""MRR: what a subscription brings in a month, the one figure every report starts from."""

from __future__ import annotations

from domain.invoicing import Coupon, discount_for
from domain.periods import Interval, monthly_amount
from domain.pricing import Pricing, price_for
from domain.subscription.status import PAYING, Status


def mrr_of(
    *,
    status: Status,
    pricing: Pricing,
    quantity: int,
    interval: Interval,
    currency: str,
    coupon: Coupon | None,
    discounted: bool,
) -> int:
    """MRR: the recurring amount after lasting discounts, normalised to a month.

    Trialing, paused and canceled subscriptions bring no MRR; a one-off coupon does not
    lower it (it is not recurring), a repeating one does while it lasts.
    """
    if status not in PAYING:
        return 0
    amount = price_for(pricing, quantity)
    if coupon and coupon.duration != "once" and discounted:
        amount += discount_for(coupon, amount, currency)
    return monthly_amount(amount, interval)
