"""Old stored topics of moved classes, so every store written before a move still loads.

Each stored event names its class as `module:qualname`, and each aggregate's created event
names the aggregate the same way (`originator_topic`). Moving a class to another module is
therefore a storage migration: the classes listed in MOVED register their old topics here
(`register_moved`, a decorator on each moved aggregate), so registration happens whenever
the class exists, and a test checks that every old topic resolves to today's class.
"""

from __future__ import annotations

from typing import TypeVar

from eventsourcing.domain import CanMutateAggregate
from eventsourcing.utils import get_topic, register_topic

T = TypeVar("T", bound=type)

# today's topic of each moved aggregate -> the module it was stored under before
MOVED: dict[str, str] = {
    "domain.catalog.plan:Plan": "domain.plan",
    "domain.catalog.coupon:Coupon": "domain.bookkeeping",
    "domain.catalog.tax_rate:TaxRate": "domain.bookkeeping",
    "domain.books.invoice_sequence:InvoiceSequence": "domain.bookkeeping",
    "domain.books.command_receipt:CommandReceipt": "domain.bookkeeping",
    "domain.books.clock:LedgerClock": "domain.bookkeeping",
    "domain.subscription.aggregate:Subscription": "domain.subscription",
}

# every old topic registered so far -> the class it resolves to today
REGISTERED: dict[str, type] = {}


def old_topics(aggregate: type, old_module: str) -> dict[str, type]:
    """The aggregate's topic and its events' topics as they were stored under `old_module`."""
    topics: dict[str, type] = {f"{old_module}:{aggregate.__qualname__}": aggregate}
    for name, value in vars(aggregate).items():
        if name[:1].isupper() and isinstance(value, type) and issubclass(value, CanMutateAggregate):
            topics[f"{old_module}:{value.__qualname__}"] = value
    return topics


def register_moved(aggregate: T) -> T:
    """Register the old topics of a moved aggregate and its events (a class decorator)."""
    old_module = MOVED[get_topic(aggregate)]
    for topic, cls in old_topics(aggregate, old_module).items():
        register_topic(topic, cls)
        REGISTERED[topic] = cls
    return aggregate
