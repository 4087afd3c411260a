"""Advancing the clock: the move itself happens before any command takes effect."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from domain import commands as c
from domain.base import iso
from domain.ledger.registry import handles
from domain.ledger.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from domain.ledger.service import Ledger


@handles(c.AdvanceClock)
def advance_clock(ledger: Ledger, cmd: c.AdvanceClock, uow: UnitOfWork) -> dict[str, Any]:
    """The clock was moved to `at` (due.take_effect) as for every command: report what ran."""
    return {"to": iso(cmd.at), **uow.due}
