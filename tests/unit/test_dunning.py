"""Dunning: retries counted from the first failure, then involuntary churn."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.dunning import DunningSchedule
from domain.errors import InvalidInput

FIRST_FAILURE = datetime(2024, 3, 10, 14, 30, tzinfo=UTC)


def test_default_schedule_retries_on_days_1_3_5_7_then_gives_up() -> None:
    schedule = DunningSchedule()
    retries = [schedule.next_retry_at(FIRST_FAILURE, n) for n in range(1, 6)]
    assert retries == [
        FIRST_FAILURE + timedelta(days=1),
        FIRST_FAILURE + timedelta(days=3),
        FIRST_FAILURE + timedelta(days=5),
        FIRST_FAILURE + timedelta(days=7),
        None,
    ]
    assert schedule.next_retry_at(FIRST_FAILURE, 50) is None
    assert schedule.final_attempt_at(FIRST_FAILURE) == FIRST_FAILURE + timedelta(days=7)


def test_parse_and_str_round_trip() -> None:
    schedule = DunningSchedule.parse(" 2, 4 ,9 ")
    assert schedule == DunningSchedule((2, 4, 9))
    assert str(schedule) == "2,4,9"
    assert str(DunningSchedule()) == "1,3,5,7"
    assert DunningSchedule.parse(str(DunningSchedule())) == DunningSchedule()


def test_empty_schedule_churns_after_the_first_failure() -> None:
    none = DunningSchedule.parse("none")
    assert none.retry_days == ()
    assert str(none) == "none"
    assert none.next_retry_at(FIRST_FAILURE, 1) is None
    assert none.final_attempt_at(FIRST_FAILURE) == FIRST_FAILURE


@pytest.mark.parametrize("text", ["", "a,b", "3,1", "1,1", "0,2", "1,,3", "-1,2", "1.5", "1;3"])
def test_parse_refuses_garbage_and_non_increasing_days(text: str) -> None:
    with pytest.raises(InvalidInput):
        DunningSchedule.parse(text)


def test_schedule_refuses_bad_days_directly() -> None:
    for days in ((3, 2), (0,), (True, 2), (1.0,), (1, 400)):
        with pytest.raises(InvalidInput):
            DunningSchedule(days)  # type: ignore[arg-type]
    assert DunningSchedule([1, 2]).retry_days == (1, 2)  # type: ignore[arg-type]


def test_next_retry_refuses_zero_failures_and_naive_times() -> None:
    with pytest.raises(InvalidInput):
        DunningSchedule().next_retry_at(FIRST_FAILURE, 0)
    with pytest.raises(InvalidInput):
        DunningSchedule().next_retry_at(datetime(2024, 3, 10), 1)
