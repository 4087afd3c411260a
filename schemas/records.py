"""The event record: the one shape every consumer of ledger events sees.

Embedded projections get it straight from the event store; Kafka consumers get it by
decoding the Avro message. Same fields, same Python types, so one projection serves both.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_OID, UUID, uuid5

STANDARD = ("originator_id", "originator_version", "timestamp", "meta", "originator_topic")


@dataclass(frozen=True, slots=True)
class EventRecord:
    event_id: str
    aggregate_type: str
    type: str
    aggregate_id: str
    version: int
    at: datetime
    meta: dict[str, str]
    data: dict[str, Any]
    position: int | None = None

    @property
    def name(self) -> str:
        """`Subscription.Renewed`: what projections dispatch on."""
        return f"{self.aggregate_type}.{self.type}"


def event_id(aggregate_id: UUID | str, version: int) -> str:
    """Deterministic, so a re-published event has the id it had the first time."""
    return str(uuid5(NAMESPACE_OID, f"{aggregate_id}:{version}"))


_FIELDS: dict[type, tuple[str, ...]] = {}


def _data_fields(cls: type) -> tuple[str, ...]:
    """An event class's own fields, worked out once (asked of every event fed to the read
    models)."""
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(
            f.name for f in dataclasses.fields(cls) if f.name not in STANDARD
        )
    return names


def to_record(event: Any, position: int | None = None) -> EventRecord:
    """A domain event object (from the event store) as an EventRecord."""
    qualname = type(event).__qualname__
    aggregate_type, _, type_name = qualname.rpartition(".")
    data = {name: getattr(event, name) for name in _data_fields(type(event))}
    return EventRecord(
        event_id=event_id(event.originator_id, event.originator_version),
        aggregate_type=aggregate_type,
        type=type_name,
        aggregate_id=str(event.originator_id),
        version=event.originator_version,
        at=event.timestamp,
        meta=dict(event.meta),
        data=data,
        position=position,
    )
