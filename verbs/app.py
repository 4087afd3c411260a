"""The context every verb runs in: the settings, the runtime opened on first use, and the
effective time of a command."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import click

from domain import commands as c
from domain.errors import InvalidInput


class App:
    """One run of the CLI: its `Config`, and a `Runtime` opened only when a verb needs it."""

    def __init__(self, data_dir: str | None) -> None:
        from bootstrap import Config

        self.config = Config.from_env(data_dir=Path(data_dir) if data_dir else None)
        self._runtime: Any = None
        self.warn_stuck = True  # `projections status/rebuild` say it their own way

    @property
    def runtime(self) -> Any:
        if self._runtime is None:
            from bootstrap import Runtime

            self._runtime = Runtime(self.config)
            if self.config.embedded:  # whatever a crash left behind, reads see it all
                self._runtime.catch_up()
                self._warn_if_stuck()
        return self._runtime

    def now(self) -> datetime:
        """Default effective time: the wall clock, or the ledger's clock if it is ahead."""
        return self.runtime.now()

    def run(self, command: c.Command) -> dict[str, Any]:
        outcome = self.runtime.ledger.execute(command)
        self.settle()
        self.recorded = True  # deliver on close, after the output
        return outcome

    def settle(self) -> None:
        """After a recorded command: bring the read models up; nothing here may fail it."""
        try:
            self.runtime.catch_up()
        except Exception as exc:  # busy or gone: the next command or read catches up
            from domain.pci import mask_card_numbers

            why = mask_card_numbers(" ".join(str(exc).split()))
            click.echo(
                "warning: recorded, but the read models are not up to date yet"
                f" ({why}); the next command or read brings them up",
                err=True,
            )
            return
        self._warn_if_stuck()

    def _warn_if_stuck(self) -> None:
        """One `warning:` line per run while a read model is stuck on an event."""
        if not self.warn_stuck or self._runtime is None or self._runtime.kafka_mode:
            return
        faults = self._runtime.feeder.faults()
        if not faults:
            return
        from consumers.embedded import describe

        self.warn_stuck = False
        names = sorted(faults)
        rebuild = (
            f"'subledger projections rebuild {names[0]}'"
            if len(names) == 1
            else f"'subledger projections rebuild NAME' for {', '.join(names)}"
        )
        click.echo(
            f"warning: read model {'; '.join(describe(faults[n]) for n in names)}"
            f"; its reports stop there: fix the cause, then run {rebuild}",
            err=True,
        )

    def close(self) -> None:
        if self._runtime is not None:
            if getattr(self, "recorded", False):  # bounded, never fails
                from verbs.webhooks import deliver_after_command

                deliver_after_command(self)
            if getattr(self, "recorded", False):  # bounded, never fails
                from verbs.notifications import deliver_after_command as notify

                notify(self)
            self._runtime.close()


def parse_time(
    text: str | None, option: str = "a time", *, bounded: bool = False
) -> datetime | None:
    """ISO 8601 date or date-time; without an offset it is UTC. An effective time (`bounded`)
    is between 1970 and 2199; a read's window may be any date."""
    from domain.limits import check_time, quote

    if text is None:
        return None
    try:
        if len(text) == 10:
            parsed = datetime.combine(date.fromisoformat(text), time(0), tzinfo=UTC)
        else:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidInput(
            f"{option}: {quote(text)} is not an ISO 8601 date or time"
            " (2025-01-31 or 2025-01-31T12:00:00Z)"
        ) from None
    return check_time(parsed, option) if bounded else parsed
