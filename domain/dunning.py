"""Dunning: when to retry a failed charge, counted from the first failure so retries don't drift."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from domain.errors import InvalidInput
from domain.periods import require_utc

_MAX_RETRY_DAY = 366  # a dunning run longer than a year is a typo, not a policy


@dataclass(frozen=True, slots=True)
class DunningSchedule:
    """Retry offsets in days after an invoice's first failed charge; after the last one, churn."""

    retry_days: tuple[int, ...] = (1, 3, 5, 7)

    def __post_init__(self) -> None:
        if isinstance(self.retry_days, list):  # accept lists from callers, store the hashable form
            object.__setattr__(self, "retry_days", tuple(self.retry_days))
        days = self.retry_days
        if not isinstance(days, tuple) or not all(
            isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= _MAX_RETRY_DAY
            for d in days
        ):
            raise InvalidInput(f"retry days must be integers in 1..{_MAX_RETRY_DAY}: {days!r}")
        if any(b <= a for a, b in pairwise(days)):
            raise InvalidInput(f"retry days must be strictly increasing: {days!r}")

    @classmethod
    def parse(cls, text: str) -> DunningSchedule:
        """Read "1,3,5,7" from the command line; "none" means no retries at all."""
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput(f"retry schedule must look like 1,3,5,7: {text!r}")
        if text.strip().lower() == "none":
            return cls(())
        parts = [p.strip() for p in text.split(",")]
        if not all(p.isascii() and p.isdigit() and len(p) <= 4 for p in parts):
            raise InvalidInput(f"retry schedule must look like 1,3,5,7: {text!r}")
        return cls(tuple(int(p) for p in parts))

    def __str__(self) -> str:
        return ",".join(str(d) for d in self.retry_days) if self.retry_days else "none"

    def next_retry_at(self, first_failed_at: datetime, failures: int) -> datetime | None:
        """When to try again after `failures` failed attempts, or None when retries are spent."""
        require_utc(first_failed_at, "first_failed_at")
        if isinstance(failures, bool) or not isinstance(failures, int) or failures < 1:
            raise InvalidInput(f"failures must be an integer >= 1, got {failures!r}")
        if failures > len(self.retry_days):
            return None
        return first_failed_at + timedelta(days=self.retry_days[failures - 1])

    def final_attempt_at(self, first_failed_at: datetime) -> datetime:
        """When the last retry happens (the first failure itself if there are no retries)."""
        require_utc(first_failed_at, "first_failed_at")
        if not self.retry_days:
            return first_failed_at
        return first_failed_at + timedelta(days=self.retry_days[-1])
