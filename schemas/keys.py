"""Kafka keys: which partition a message lands in, hence what is ordered with what.

Per-customer order is the rule: every message about one customer (or, for the catalog and
the ledger's own books, about one thing) carries the same key, so it lands in one partition
and is handled in the order it was produced.
"""

from __future__ import annotations

from typing import Any

from schemas.records import EventRecord

KEY_FIELDS = (
    "customer_id",
    "subscription_id",
    "plan_id",
    "code",  # coupons
    "country",  # tax rates
    "endpoint_id",  # webhook endpoints
    "delivery_id",  # webhook deliveries
)
CLOCK_KEY = b"clock"


def command_key(command: Any) -> bytes:
    """The Kafka key of a command on `subledger.commands`: whose it is.

    The first of KEY_FIELDS the command carries, UTF-8; AdvanceClock is keyed by the
    constant `b"clock"`. So one customer's commands (RegisterCustomer, Subscribe, and the
    subscription commands that name their customer_id) land in one partition and apply in
    order. A subscription command sent without customer_id is keyed by its subscription id
    instead.
    """
    for name in KEY_FIELDS:
        value = getattr(command, name, None)
        if isinstance(value, str) and value:
            return value.encode()
    if type(command).__name__ == "AdvanceClock":
        return CLOCK_KEY
    raise ValueError(f"{type(command).__name__} carries none of {', '.join(KEY_FIELDS)}")


CUSTOMER_KEYED = ("Customer", "Subscription")


def event_key(record: EventRecord) -> bytes:
    """The Kafka key of an event on `subledger.events`: whose it is.

    A customer's own events and those of their subscriptions are keyed by the customer id,
    so one customer's history stays in one partition, in the ledger's order: a consumer
    that sums per customer (MRR movements) sees the moves in the order they happened.
    Everything else (plans, coupons, tax rates, the ledger's own books) by aggregate id.
    Per-aggregate order holds either way.
    """
    customer = record.data.get("customer_id")
    if record.aggregate_type in CUSTOMER_KEYED and customer:
        return str(customer).encode()
    return record.aggregate_id.encode()
