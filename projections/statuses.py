"""The status words read models store and filter on, each named once.

Subscription statuses are the domain's (`domain.subscription.status`: every Subscription
event carries one), as plain strings in the enum's order, so SQL parameters are the same in
every process. Invoice statuses and payment outcomes are the billing read model's own words.
SQL takes them as parameters (`status IN (?, ?)` with `marks(PAYING)`), never as literals,
but in the terms of a partial index and of the queries it serves (`listed`): SQLite uses
such an index only for a query that carries its very terms, not bound parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

from domain.subscription import status as s

TRIALING = s.Status.TRIALING.value
LIVE = tuple(x.value for x in s.Status if x in s.LIVE)  # periods, invoices, retries go on
PAYING = tuple(x.value for x in s.Status if x in s.PAYING)  # paying in metrics, renewing
UNSEEN = "new"  # metrics' row before the subscription's first event is applied to it

OPEN, PAID, UNCOLLECTIBLE = "open", "paid", "uncollectible"  # invoices.status
SUCCEEDED, FAILED = "succeeded", "failed"  # payments.outcome


def marks(values: Sequence[object]) -> str:
    """`?, ?, ?`: one placeholder per value, for `IN (...)`."""
    return ", ".join("?" * len(values))


def listed(words: Sequence[str]) -> str:
    """`'pending', 'failed'`: status words written out, for a partial index's `IN (...)`
    and the queries it serves (constants of ours, never input)."""
    assert all(w.isidentifier() for w in words), words
    return ", ".join(f"'{w}'" for w in words)
