"""When a failed webhook delivery is tried again, and when the ledger gives up on it.

Like Stripe's: retried with exponential backoff for up to three days after the first
attempt of a round (a replay starts a new round), then given up. Wall-clock times: a
receiver lives in real time, whatever the ledger clock says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.errors import InvalidInput


@dataclass(frozen=True)
class RetryPolicy:
    """Delay after the n-th failed attempt: first_delay x factor^(n-1), at most max_delay;
    no attempt later than give_up_after the round's first one."""

    first_delay_s: int = 60
    factor: int = 5
    max_delay_s: int = 12 * 3600
    give_up_after_s: int = 3 * 24 * 3600

    def __post_init__(self) -> None:
        if not 0 <= self.first_delay_s <= self.max_delay_s:
            raise InvalidInput("the first retry delay must be from 0 to the longest delay")
        if not 1 <= self.factor <= 100:
            raise InvalidInput("the backoff factor must be from 1 to 100")
        if not 0 <= self.give_up_after_s <= 30 * 24 * 3600:
            raise InvalidInput("webhook retries may last from 0 seconds to 30 days")

    def delay(self, failures: int) -> timedelta:
        """How long to wait after the `failures`-th failed attempt of a round (1 = first)."""
        seconds = self.first_delay_s * self.factor ** min(max(failures - 1, 0), 40)
        return timedelta(seconds=min(seconds, self.max_delay_s))

    def next_attempt(
        self, round_started_at: datetime, attempted_at: datetime, failures: int
    ) -> datetime | None:
        """When to try again after a failure at `attempted_at`, or None: give up."""
        at = attempted_at + self.delay(failures)
        if at > round_started_at + timedelta(seconds=self.give_up_after_s):
            return None
        return at
