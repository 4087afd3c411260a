"""Customers: registering, updating and erasing (crypto-shredding) them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from domain import commands as c
from domain.customer import Customer, check_profile, personal_fields
from domain.errors import AlreadyExists
from domain.identity import customer_uuid
from domain.ledger.registry import handles
from domain.ledger.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from domain.ledger.service import Ledger


@handles(c.RegisterCustomer)
def register_customer(ledger: Ledger, cmd: c.RegisterCustomer, uow: UnitOfWork) -> dict[str, Any]:
    check_profile(
        name=cmd.name, email=cmd.email, country=cmd.country, payment_token=cmd.payment_token
    )
    cid = customer_uuid(cmd.customer_id)
    if uow.find(Customer, cid) is not None:
        raise AlreadyExists(f"customer '{cmd.customer_id}' already exists")
    personal = ledger.vault.encrypt(
        str(cid), personal_fields(cmd.name, cmd.email, cmd.payment_token, cmd.preferences)
    )
    uow.start(
        Customer.register(
            id=cid,
            customer_id=cmd.customer_id,
            country=cmd.country,
            personal=personal,
            at=cmd.at,
            meta=cmd.meta(),
        )
    )
    return {"customer_id": cmd.customer_id}


@handles(c.UpdateCustomer)
def update_customer(ledger: Ledger, cmd: c.UpdateCustomer, uow: UnitOfWork) -> dict[str, Any]:
    check_profile(
        name=cmd.name, email=cmd.email, country=cmd.country, payment_token=cmd.payment_token
    )
    customer = ledger.load_customer(uow, cmd.customer_id)
    data = dict(ledger.personal(uow, customer))
    for key in ("name", "email", "payment_token"):
        if getattr(cmd, key) is not None:
            data[key] = getattr(cmd, key)
    if cmd.preferences is not None:
        data["preferences"] = {**(data.get("preferences") or {}), **cmd.preferences}
        check_profile(name=None, email=None, country=None, payment_token=None,
                      preferences=data["preferences"])  # fmt: skip
    uow.personal[str(customer.id)] = data
    customer.update(
        country=cmd.country or customer.country,
        personal=ledger.vault.encrypt(str(customer.id), data),
        at=cmd.at,
        meta=cmd.meta(),
    )
    return {"customer_id": cmd.customer_id}


@handles(c.EraseCustomer)
def erase_customer(ledger: Ledger, cmd: c.EraseCustomer, uow: UnitOfWork) -> dict[str, Any]:
    """Record the erasure; the key is destroyed once it is committed (`shred_key`)."""
    customer = ledger.load_customer(uow, cmd.customer_id)
    customer.erase(cmd.at, cmd.meta())
    return {"customer_id": cmd.customer_id, "shred_key": str(customer.id)}
