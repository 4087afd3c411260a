"""Payments recorded by hand: a bank transfer or the payments team settling an invoice."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from domain import commands as c
from domain.ledger.registry import handles
from domain.ledger.unit_of_work import UnitOfWork
from domain.subscription.payments import record_payment as settle

if TYPE_CHECKING:
    from domain.ledger.service import Ledger


@handles(c.RecordPayment)
def record_payment(ledger: Ledger, cmd: c.RecordPayment, uow: UnitOfWork) -> dict[str, Any]:
    sub = ledger.load_subscription(uow, cmd.subscription_id, cmd)
    settle(sub, cmd.invoice_number, cmd.amount, cmd.reference, cmd.at, cmd.meta(), cmd.currency)
    return {
        "subscription_id": cmd.subscription_id,
        "invoice": cmd.invoice_number,
        "status": sub.status.value,
    }
