"""The Ledger dispatches through a registry: one handler per command class, no more."""

from __future__ import annotations

from typing import Any

import pytest

from domain import commands as c
from domain.errors import InvalidInput
from domain.ledger.handlers import HANDLERS, handler_for
from domain.ledger.registry import DuplicateHandler, handles


def test_every_command_has_exactly_one_handler() -> None:
    assert set(HANDLERS) == set(c.COMMANDS.values())
    names = [h.__module__ + "." + h.__qualname__ for h in HANDLERS.values()]
    assert len(set(names)) == len(c.COMMANDS)  # no function handles two commands


def test_a_second_handler_for_a_command_is_refused_at_registration() -> None:
    before = dict(HANDLERS)

    def again(ledger: Any, cmd: c.DefinePlan, uow: Any) -> dict[str, Any]:
        return {}

    with pytest.raises(DuplicateHandler, match="DefinePlan is already handled by define_plan"):
        handles(c.DefinePlan)(again)
    assert before == HANDLERS


def test_a_command_class_without_a_handler_is_an_unknown_command() -> None:
    from dataclasses import dataclass
    from datetime import UTC, datetime

    @dataclass(frozen=True, kw_only=True)
    class Unheard(c.Command):
        pass

    command = Unheard(command_id="x-1", at=datetime(2025, 1, 1, tzinfo=UTC))
    with pytest.raises(InvalidInput, match="unknown command Unheard"):
        handler_for(command)
