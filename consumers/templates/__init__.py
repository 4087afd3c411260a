"""The message templates: plain-text Jinja2 files shipped in this package, each overridable
by a file of the same name in `SUBLEDGER_TEMPLATES_DIR`.

A template's first line is `Subject: ...`, then a blank line, then the body. Templates are
rendered in Jinja2's sandbox (an operator's edited template can read what it is given and
nothing else) with undefined names refused, so a typo fails the attempt (retried, then
given up) instead of mailing a hole. Filters: `money(currency)` (`10.00 USD`), `day`
(`2025-03-01`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from domain.errors import InvalidInput
from domain.money import format_amount
from domain.notifications.messages import check_header

PACKAGED = Path(__file__).resolve().parent


class TemplateProblem(ValueError):
    """A template that cannot make a message (missing, malformed, or naming what it lacks)."""


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    body: str


def money(amount: Any, currency: str) -> str:
    try:
        return f"{format_amount(int(amount), currency)} {currency}"
    except Exception:  # an unknown currency: the minor units are still true
        return f"{amount} {currency} minor units"


def day(text: Any) -> str:
    """`2025-03-01T00:00:00Z` -> `2025-03-01`: the date a customer reads."""
    return str(text)[:10] if text else ""


class Renderer:
    """Renders one kind of message from its context; `override_dir` wins over the defaults."""

    def __init__(self, override_dir: Path | None = None) -> None:
        loaders = [FileSystemLoader(str(override_dir))] if override_dir else []
        loaders.append(FileSystemLoader(str(PACKAGED)))
        self.env = SandboxedEnvironment(
            loader=ChoiceLoader(loaders),
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.env.filters["money"] = money
        self.env.filters["day"] = day

    def render(self, template: str, context: dict[str, Any]) -> Rendered:
        try:
            text = self.env.get_template(f"{template}.txt").render(**context)
        except Exception as exc:  # missing, broken, or an undefined name: say which
            raise TemplateProblem(f"template {template}.txt: {exc}") from None
        head, _, body = text.partition("\n\n")
        if not head.startswith("Subject:"):
            raise TemplateProblem(f"template {template}.txt must start with 'Subject: ...'")
        subject = head.removeprefix("Subject:").strip()
        try:
            check_header(subject, "the subject")
        except InvalidInput as exc:
            raise TemplateProblem(f"template {template}.txt: {exc}") from None
        return Rendered(subject=subject, body=body.strip("\n") + "\n")


def names() -> list[str]:
    """The templates shipped in the package (one per kind of message)."""
    return sorted(p.stem for p in PACKAGED.glob("*.txt"))
