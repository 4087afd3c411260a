"""Notifications: which events make which messages, and delivering them once per channel."""

from __future__ import annotations

from domain.notifications.delivery import (
    FINAL,
    STATUSES,
    AlreadyDelivered,
    Delivery,
    DeliveryInFlight,
    DeliveryNotDue,
    DeliveryPolicy,
    delivery_uuid,
)
from domain.notifications.messages import CHANNELS, EVENT_KINDS, KINDS, Email, message_id, wanted

__all__ = [
    "CHANNELS",
    "EVENT_KINDS",
    "FINAL",
    "KINDS",
    "STATUSES",
    "AlreadyDelivered",
    "Delivery",
    "DeliveryInFlight",
    "DeliveryNotDue",
    "DeliveryPolicy",
    "Email",
    "delivery_uuid",
    "message_id",
    "wanted",
]
