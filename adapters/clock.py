"""The wall clock, the one place outside tests that asks the machine what time it is.

The domain never reads it (time is an input): the CLI takes its default `--at` from here
and the wall-clock scheduler its ticks, both through bootstrap.py.
"""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """The current time in UTC, to the second (effective times carry no microseconds)."""
    return datetime.now(UTC).replace(microsecond=0)
