"""serve's projection workers decode each event once for all of them (consumers/decoded.py),
and never hand one worker another message's record."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from ledger_support import Book, T, flat

from consumers.decoded import SharedDecodes
from domain import commands as c
from schemas.codec import DecodeError, EventCodec
from schemas.records import EventRecord, to_record


class Message(NamedTuple):  # what a consumer hands a worker: kafka-python's ConsumerRecord's
    topic: str
    partition: int
    offset: int
    value: bytes


class Counting(EventCodec):
    def __init__(self) -> None:
        super().__init__(check_types=False)
        self.calls = 0

    def decode(self, data: Any, position: int | None = None) -> EventRecord:
        self.calls += 1
        return super().decode(data, position)


def two_events(tmp_path: Path) -> list[bytes]:
    book = Book.embedded(tmp_path / "data")
    try:
        book.run(c.DefinePlan, T(2025, 1, 1), plan_id="basic", name="Basic", currency="USD",
                 pricing=flat(1000))  # fmt: skip
        ledger = book.ledger
        found = ledger.recorder.select_notifications(start=1, limit=2)
        codec = EventCodec(check_types=False)
        return [codec.encode(to_record(ledger.mapper.to_domain_event(n), n.id)) for n in found]
    finally:
        book.close()


def test_each_message_is_decoded_once_for_every_worker_and_only_ever_as_itself(
    tmp_path: Path,
) -> None:
    first, second = two_events(tmp_path)
    shared, codec = SharedDecodes(), Counting()
    message = Message("events", 0, 7, first)
    one = shared.decode(codec, message, 1)
    again = shared.decode(codec, Message("events", 0, 7, bytes(first)), 1)  # another consumer
    assert isinstance(one, EventRecord) and again is one and codec.calls == 1
    # the same place with other bytes (a topic made again) or another position: decoded anew
    other = shared.decode(codec, Message("events", 0, 7, second), 2)
    assert other.name != one.name and codec.calls == 2
    assert shared.decode(codec, Message("events", 0, 7, second), 3).position == 3
    assert codec.calls == 3
    # elsewhere: its own record
    assert shared.decode(codec, Message("events", 1, 7, first), 1) is not one


def test_an_undecodable_message_is_the_same_error_for_every_worker_and_the_cache_is_bounded(
    tmp_path: Path,
) -> None:
    shared, codec = SharedDecodes(limit=3), Counting()
    poison = Message("events", 0, 1, b"\x00 not an event")
    error = shared.decode(codec, poison, 1)
    assert isinstance(error, DecodeError) and shared.decode(codec, poison, 1) is error
    assert codec.calls == 1
    first, _ = two_events(tmp_path)
    for offset in range(2, 6):
        shared.decode(codec, Message("events", 0, offset, first), offset)
    assert len(shared._found) <= 3
