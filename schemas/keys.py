"""Kafka keys: which partition a message lands in, hence what is ordered with what.

Per-aggregate order is the rule (DESIGN.md rule 6): every message about one thing carries
the same key, so it lands in one partition and is handled in the order it was produced.
"""

from __future__ import annotations

from typing import Any

from schemas.records import EventRecord

KEY_FIELDS = ("subscription_id", "customer_id", "plan_id", "code", "country")
CLOCK_KEY = b"clock"


def command_key(command: Any) -> bytes:
    """The Kafka key of a command on `subledger.commands`: the id of what it changes.

    The first of subscription_id, customer_id, plan_id, code (coupons), country (tax)
    the command carries, UTF-8; AdvanceClock is keyed by the constant `b"clock"`. So every
    command that touches one subscription, Subscribe included, lands in one partition and
    is applied in order (Subscribe is keyed by its subscription_id, not its customer_id:
    the later commands on that subscription only carry the subscription id).
    """
    for name in KEY_FIELDS:
        value = getattr(command, name, None)
        if isinstance(value, str) and value:
            return value.encode()
    if type(command).__name__ == "AdvanceClock":
        return CLOCK_KEY
    raise ValueError(f"{type(command).__name__} carries none of {', '.join(KEY_FIELDS)}")


def event_key(record: EventRecord) -> bytes:
    """The Kafka key of an event on `subledger.events`: its aggregate id (UUID text)."""
    return record.aggregate_id.encode()
