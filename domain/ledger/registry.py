"""One handler per command class: `@handles(c.DefinePlan) def define_plan(ledger, cmd, uow)`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from domain import commands as c
from domain.errors import InvalidInput

if TYPE_CHECKING:
    from domain.ledger.service import Ledger
    from domain.ledger.unit_of_work import UnitOfWork

C = TypeVar("C", bound=c.Command)
Handler = Callable[["Ledger", Any, "UnitOfWork"], dict[str, Any]]

HANDLERS: dict[type[c.Command], Handler] = {}


class DuplicateHandler(TypeError):
    """A second handler for one command class: a programming error, found at import."""


def handles(
    command: type[C],
) -> Callable[[Callable[[Ledger, C, UnitOfWork], dict[str, Any]]], Handler]:
    """Register the decorated function as THE handler of `command`."""

    def register(func: Callable[[Ledger, C, UnitOfWork], dict[str, Any]]) -> Handler:
        if command in HANDLERS:
            raise DuplicateHandler(
                f"{command.__name__} is already handled by {HANDLERS[command].__qualname__}"
            )
        HANDLERS[command] = cast(Handler, func)
        return HANDLERS[command]

    return register


def handler_for(command: c.Command) -> Handler:
    try:
        return HANDLERS[type(command)]
    except KeyError:
        raise InvalidInput(f"unknown command {type(command).__name__}") from None
