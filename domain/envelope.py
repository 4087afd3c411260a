"""The command envelope: who asked, when it takes effect, and its id for idempotency.

Every command (domain.commands) is a `Command`: its fields are checked when it is built,
card numbers first, so nothing that breaks a rule is ever looked up, let alone recorded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from domain import limits as lim
from domain.errors import InvalidInput
from domain.pci import refuse_card_numbers

CARD_EXEMPT = frozenset({"command_id", "correlation_id"})


@dataclass(frozen=True, kw_only=True)
class Command:
    """Every command says who asked (actor, source), when it takes effect (`at`) and its id.

    A repeated `command_id` has no second effect.
    """

    command_id: str
    at: datetime
    actor: str = "anonymous"
    source: str = "cli"
    correlation_id: str | None = None
    implied: tuple[str, ...] = ()  # fields filled in for the caller (e.g. `at` = now)

    def __post_init__(self) -> None:
        # First of all, before any other check can quote a field: no card numbers, in any
        # field but the machine ids (numeric ids of 13-19 digits pass Luhn one time in ten)
        refuse_card_numbers(
            {f.name: getattr(self, f.name) for f in fields(self) if f.name not in CARD_EXEMPT}
        )
        lim.check_id(self.command_id, "command_id")
        lim.check_time(self.at, "the effective time (at)")
        # Ledger time is UTC to the second: proration is by the second, and stored times
        # then sort as text everywhere.
        object.__setattr__(self, "at", self.at.astimezone(UTC).replace(microsecond=0))
        lim.check_id(self.actor, "actor")
        lim.check_id(self.source, "source")
        if self.correlation_id is not None:
            lim.check_id(self.correlation_id, "correlation_id")
        names = {f.name for f in fields(self)} - {"command_id", "implied"}
        if not isinstance(self.implied, tuple) or not set(self.implied) <= names:
            raise InvalidInput("implied must list field names of the command")
        self.check()

    def check(self) -> None:
        """The command's own fields; each command type says what they may hold."""

    @property
    def command_name(self) -> str:
        return type(self).__name__

    def meta(self, **extra: str) -> dict[str, str]:
        meta = {
            "command_id": self.command_id,
            "command": self.command_name,
            "correlation_id": self.correlation_id or self.command_id,
            "actor": self.actor,
            "source": self.source,
        }
        requested = getattr(self, "_requested_at", None)
        if requested is not None:  # taken at the ledger clock, later than asked
            meta["requested_at"] = _iso(requested)
        meta.update(extra)
        return meta

    # ---- idempotency ------------------------------------------------------------------

    def implying(self, *names: str) -> Command:
        """This command with `names` marked as filled in for the caller (defaults such as
        the CLI's `at` = now): they are left out of the request digest, so an honest retry
        of the same request with the same command id is a duplicate, not a conflict."""
        return dataclasses.replace(self, implied=tuple(sorted({*self.implied, *names})))

    def request_digest(self) -> str:
        """SHA-256 of the command's name and the fields its caller supplied.

        The envelope's who (actor, source, correlation id) is not part of the request;
        the effective time is, unless it was implied. A field left empty (None) is one the
        caller did not give, like an implied one: a subscription command sent directly
        (no customer id) and the same one published (the customer id filled in for its
        Kafka key) are one request.
        """
        skip = {"command_id", "actor", "source", "correlation_id", "implied", *self.implied}
        request = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in skip and getattr(self, f.name) is not None
        }
        text = json.dumps(
            {"command": self.command_name, "fields": request},
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
            default=_json_default,
        )
        return hashlib.sha256(text.encode()).hexdigest()

    def taking_effect_at(self, at: datetime) -> Command:
        """This command moved to a later effective time; the requested one goes in its meta."""
        moved = dataclasses.replace(self, at=at)
        object.__setattr__(moved, "_requested_at", self.at)
        return moved

    @property
    def requested_at(self) -> datetime:
        """The effective time the caller asked for (`at` unless moved to the ledger clock)."""
        return getattr(self, "_requested_at", None) or self.at


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, tuple | frozenset | set):
        return list(value)
    raise TypeError(f"no digest form for {type(value).__name__}")
