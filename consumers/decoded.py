"""Events decoded once per `serve` process, for every projection worker in it that reads them.

Each projection worker has its own consumer group and reads the whole events topic, so in
one process (`serve --workers projections`) every event was decoded by each read model
that wants it. A worker now asks `SharedDecodes` first: the message at the same topic,
partition and offset, with the same bytes and log position, decoded by another worker a
moment before, is handed over as it is. Read models never change the records they are
given (tests/unit/test_projection_handlers.py applies a book to each and compares), so one
record serves them all. Bounded: when full, everything is forgotten and decoded again.
"""

from __future__ import annotations

from typing import Any

from schemas.codec import DecodeError, EventCodec


def decode(codec: EventCodec, value: bytes, position: int) -> Any:
    """The EventRecord `value` holds, or the DecodeError decoding it raised (not raised)."""
    try:
        return codec.decode(value, position)
    except DecodeError as exc:
        return exc


class SharedDecodes:
    """(topic, partition, offset) -> the message's bytes, position and EventRecord (or the
    DecodeError it raised); shared by threads, whose dict operations the GIL keeps whole."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._found: dict[tuple[str, int, int], tuple[bytes, int, Any]] = {}

    def decode(self, codec: EventCodec, m: Any, position: int) -> Any:
        """The message's EventRecord, or the DecodeError decoding it raised."""
        key = (m.topic, m.partition, m.offset)
        found = self._found.get(key)
        if found is not None and found[1] == position and found[0] == m.value:
            return found[2]
        record = decode(codec, m.value, position)
        if len(self._found) >= self.limit:
            self._found.clear()
        self._found[key] = (m.value, position, record)
        return record
