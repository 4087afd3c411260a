"""Notifications: claiming a message, recording what its delivery came to, the in-app inbox's
reads; and the support log's notes."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from domain import commands as c
from domain.errors import NotFound
from domain.ledger.registry import handles
from domain.ledger.unit_of_work import UnitOfWork
from domain.notifications.delivery import Delivery, delivery_uuid
from domain.notifications.messages import IN_APP, KINDS, WEBHOOK, wanted

if TYPE_CHECKING:
    from domain.ledger.service import Ledger


def _delivery(uow: UnitOfWork, message_id: str) -> Delivery:
    return uow.get(
        Delivery,
        delivery_uuid(message_id),
        lambda: NotFound(f"no delivery of message {message_id}"),
    )


@handles(c.ClaimDelivery)
def claim_delivery(ledger: Ledger, cmd: c.ClaimDelivery, uow: UnitOfWork) -> dict[str, Any]:
    """Decide whether the message goes out, and if so, whose it is to send (one claimer).

    An erased customer gets nothing more; a channel or kind the customer turned off is
    skipped (receipts and legal notices by email never are); an in-app message is delivered
    by this very command; a webhook-channel message is the webhooks worker's.
    """
    customer = ledger.load_customer(uow, cmd.customer_id)
    delivery = uow.find(Delivery, delivery_uuid(cmd.message_id))
    if delivery is None:
        opened = Delivery.open(
            message_id=cmd.message_id,
            customer_id=cmd.customer_id,
            channel=cmd.channel,
            template=cmd.template,
            at=cmd.at,
            meta=cmd.meta(),
        )
        # another claimer opening it just now makes the flush conflict: redone, it sees theirs
        delivery = uow.start(opened)
    delivery.check_same(cmd.customer_id, cmd.channel, cmd.template)
    delivery.check_claimable(cmd.attempted_at)
    out: dict[str, Any] = {"message_id": cmd.message_id, "channel": cmd.channel}
    if customer.erased:
        delivery.give_up("the customer was erased", cmd.at, cmd.meta())
        return {**out, "decision": "gave_up"}
    preferences = ledger.personal(uow, customer).get("preferences") or {}
    ok, why = wanted(cmd.template, cmd.channel, preferences)
    if not ok:
        delivery.skip(why, cmd.at, cmd.meta())
        return {**out, "decision": "skipped", "reason": why}
    if cmd.channel == IN_APP:
        delivery.deliver_in_place(cmd.attempted_at, cmd.at, cmd.meta())
        return {**out, "decision": "sent"}
    if cmd.channel == WEBHOOK:
        delivery.hand_off(KINDS[cmd.template].webhook_type or "", cmd.at, cmd.meta())
        return {**out, "decision": "handed_off"}
    lease = timedelta(seconds=cmd.lease_seconds)
    attempt = delivery.claim(cmd.claimer, cmd.attempted_at, lease, cmd.at, cmd.meta())
    return {**out, "decision": "claimed", "attempt": attempt}


@handles(c.RecordDelivery)
def record_delivery(ledger: Ledger, cmd: c.RecordDelivery, uow: UnitOfWork) -> dict[str, Any]:
    delivery = _delivery(uow, cmd.message_id)
    changed = delivery.record(
        cmd.result,
        cmd.attempt,
        cmd.detail,
        cmd.attempted_at,
        ledger.settings.delivery,
        cmd.at,
        cmd.meta(),
        permanent=cmd.permanent,
    )
    return {"message_id": cmd.message_id, "status": delivery.status, "recorded": changed}


@handles(c.MarkNotificationRead)
def mark_read(ledger: Ledger, cmd: c.MarkNotificationRead, uow: UnitOfWork) -> dict[str, Any]:
    delivery = _delivery(uow, cmd.message_id)
    delivery.check_same(cmd.customer_id, delivery.channel, delivery.template)
    first = delivery.mark_read(cmd.at, cmd.meta())
    return {"message_id": cmd.message_id, "read": True, "first_read": first}


@handles(c.RecordCustomerNote)
def record_note(ledger: Ledger, cmd: c.RecordCustomerNote, uow: UnitOfWork) -> dict[str, Any]:
    """The note's text is personal data: only its ciphertext is recorded (never the outcome)."""
    customer = ledger.load_customer(uow, cmd.customer_id)
    customer.check_not_erased()
    note = ledger.vault.encrypt(str(customer.id), {"text": cmd.text})
    customer.record_note(channel=cmd.channel, note=note, at=cmd.at, meta=cmd.meta())
    return {"customer_id": cmd.customer_id, "channel": cmd.channel, "note": "recorded"}
