"""Access control: which source may issue which command, and who may read personal data.

Pure rules over an already-parsed policy (the TOML file is read by adapters/policy_file.py):
`parse` checks the document's shape and names, `Policy.check` refuses a command its source may
not issue, `Policy.may_read_personal_data` matches an actor against the allowed patterns.
No policy at all (None) means everything is allowed; that choice is the caller's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from domain.errors import InvalidInput, LedgerError
from domain.limits import quote

EVERY = "*"  # in a source's `commands`: every command


class PolicyError(InvalidInput):
    """The policy file is not what its schema says: the service refuses to start."""

    code = "invalid_policy"


class Forbidden(LedgerError):
    """A command its source may not issue, or a read of personal data its actor may not make."""

    code = "forbidden"


@dataclass(frozen=True)
class Policy:
    """The rules of one policy file; `origin` names it in every refusal."""

    origin: str
    sources: Mapping[str, frozenset[str]] = field(default_factory=dict)
    readers: tuple[str, ...] = ()  # fnmatch patterns of actors who may read personal data

    def allows(self, source: str, command: str) -> bool:
        """Whether `source` may issue the command named `command` (as in the Avro contract)."""
        allowed = self.sources.get(source, frozenset())
        return EVERY in allowed or command in allowed

    def check(self, source: str, command: str) -> None:
        """Raise Forbidden, with the reason a caller can show, unless the source may issue it."""
        if not self.allows(source, command):
            raise Forbidden(
                f"source {quote(source)} may not issue {command} (policy {self.origin})"
            )

    def may_read_personal_data(self, actor: str) -> bool:
        """Whether `actor` matches one of the `[personal_data] actors` patterns."""
        return any(fnmatchcase(actor, pattern) for pattern in self.readers)

    def describe(self) -> str:
        """One line for a log: who may do what."""
        parts = []
        for source in sorted(self.sources):
            allowed = self.sources[source]
            what = "every command" if EVERY in allowed else f"{len(allowed)} commands"
            parts.append(f"{source} ({what})")
        readers = ", ".join(self.readers) or "nobody"
        sources = ", ".join(parts) or "none"
        return f"access policy {self.origin}: sources {sources}; personal data: {readers}"


def parse(document: Mapping[str, Any], origin: str, known_commands: Iterable[str]) -> Policy:
    """The policy a parsed TOML document describes; PolicyError (one line naming `origin` and
    the key) for an unknown key, an unknown command name or a value of the wrong type."""
    known = frozenset(known_commands)

    def fail(key: str, what: str) -> PolicyError:
        return PolicyError(f"policy {origin}: {key}: {what}")

    unknown = sorted(set(document) - {"sources", "personal_data"})
    if unknown:
        raise fail(unknown[0], "unknown key (known: sources, personal_data)")
    sources: dict[str, frozenset[str]] = {}
    tables = document.get("sources", {})
    if not isinstance(tables, Mapping):
        raise fail("sources", "must be a table of [sources.NAME] tables")
    for name, table in tables.items():
        key = f"sources.{name}"
        if not name.strip():
            raise fail(key, "a source needs a name")
        if not isinstance(table, Mapping):
            raise fail(key, 'must be a table with commands = ["..."]')
        extra = sorted(set(table) - {"commands"})
        if extra:
            raise fail(f"{key}.{extra[0]}", "unknown key (known: commands)")
        if "commands" not in table:
            raise fail(f"{key}.commands", 'missing (e.g. commands = ["RegisterCustomer"])')
        commands = _strings(table["commands"], f"{key}.commands", fail)
        for command in commands:
            if command != EVERY and command not in known:
                raise fail(
                    f"{key}.commands",
                    f"unknown command {quote(command)} (name commands as in the Avro"
                    ' contract, e.g. "RegisterCustomer", or "*" for every command)',
                )
        sources[name] = frozenset(commands)
    personal = document.get("personal_data", {})
    if not isinstance(personal, Mapping):
        raise fail("personal_data", 'must be a table with actors = ["..."]')
    extra = sorted(set(personal) - {"actors"})
    if extra:
        raise fail(f"personal_data.{extra[0]}", "unknown key (known: actors)")
    readers = _strings(personal.get("actors", []), "personal_data.actors", fail)
    return Policy(origin=origin, sources=sources, readers=tuple(readers))


def _strings(value: Any, key: str, fail: Any) -> list[str]:
    if not isinstance(value, list):
        raise fail(key, "must be a list of strings")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise fail(key, f"must be a list of non-empty strings, not {quote(item)}")
    return list(value)
