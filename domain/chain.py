"""Tamper evidence: the canonical form of a stored row and the two hash chains over it.

Pure (no I/O), so the recorders that write the chain (adapters/chain_recorder.py) and
`audit verify`, which recomputes it, share one definition; README "Tamper evidence" states it.

- canonical(row) = for each field, in order notification_id, originator_id,
  originator_version, topic, state: its length as 8 bytes big-endian, then its bytes
  (integers in decimal ASCII, the id as its lower-case hyphenated UUID text, the topic
  UTF-8, the state the stored bytes, ciphertext included).
- event hash = SHA-256(previous event hash of the same aggregate || canonical(row)); the
  previous of an aggregate's first event is GENESIS (32 zero bytes).
- log hash = SHA-256(previous row's log hash, in notification order || event hash); the
  previous of the first row is GENESIS. The log hash of the last row is the head.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

GENESIS = bytes(32)
SEAL_POSITION = 0  # the chain row at position 0 marks a chained (sealed) store


@dataclass(frozen=True)
class Row:
    """One stored event, as stored."""

    position: int  # notification id
    originator_id: str
    version: int
    topic: str
    state: bytes


@dataclass(frozen=True)
class Link:
    """One row of the chain table: the two hashes of the stored event at `position`."""

    position: int
    originator_id: str
    version: int
    event_hash: str  # hex
    log_hash: str  # hex


@dataclass(frozen=True)
class Finding:
    """The first place where the store and its chain disagree."""

    position: int
    originator_id: str
    version: int
    problem: str

    def line(self) -> str:
        return (
            f"log position {self.position}, aggregate {self.originator_id}"
            f" version {self.version}: {self.problem}"
        )


def originator_text(originator_id: UUID | str) -> str:
    """The id as the chain names it: a UUID's hyphenated lower-case text, else the string."""
    return str(originator_id)  # str(UUID) is the lower-case hyphenated form


def row_of(position: int, originator_id: Any, version: int, topic: str, state: bytes) -> Row:
    return Row(position, originator_text(originator_id), int(version), topic, bytes(state))


def canonical(row: Row) -> bytes:
    """The row's bytes, length-prefixed field by field, so no two rows share a form."""
    fields = (
        str(row.position).encode(),
        row.originator_id.encode(),
        str(row.version).encode(),
        row.topic.encode(),
        row.state,
    )
    return b"".join(len(f).to_bytes(8, "big") + f for f in fields)


def event_hash(previous: bytes, row: Row) -> bytes:
    return hashlib.sha256(previous + canonical(row)).digest()


def log_hash(previous: bytes, event: bytes) -> bytes:
    return hashlib.sha256(previous + event).digest()


def link(
    rows: Iterable[Row], previous_log: bytes, previous_event: Callable[[Row], bytes]
) -> list[Link]:
    """The chain rows for new stored rows (in notification order); `previous_event(row)`
    is the event hash of the row's aggregate before it (GENESIS for its first event)."""
    links: list[Link] = []
    last: dict[str, bytes] = {}
    for row in rows:
        before = last.get(row.originator_id)
        if before is None:
            before = previous_event(row)
        mine = event_hash(before, row)
        previous_log = log_hash(previous_log, mine)
        last[row.originator_id] = mine
        links.append(
            Link(row.position, row.originator_id, row.version, mine.hex(), previous_log.hex())
        )
    return links


@dataclass
class Verdict:
    """What `verify` found: the first finding (None: intact), rows checked and the head."""

    finding: Finding | None
    rows: int
    head: str
    position: int
    expected_seen: bool = False  # `expect` was one of the recomputed checkpoints


def verify(
    rows: Iterable[Row],
    links: Iterable[Link],
    previous_log: bytes = GENESIS,
    previous_event: Callable[[str, int], bytes | None] = lambda _id, _v: None,
    expect: str | None = None,
) -> Verdict:
    """Recompute both chains over `rows` and compare with the stored `links`, both in
    notification order; stop at the first disagreement. `previous_event(id, version)` gives
    the stored event hash of a row before the range (verify --from), None if there is none;
    `expect`: a checkpoint (log hash, hex) anchored earlier, looked for among the recomputed."""
    last: dict[str, tuple[int, bytes]] = {}
    seen = False  # only a recomputed checkpoint counts (never GENESIS, nor one before --from)
    head, position, count = previous_log, 0, 0
    for row, stored in _merge(rows, links):
        count += 1
        if row is None:
            assert stored is not None
            return Verdict(
                Finding(
                    stored.position,
                    stored.originator_id,
                    stored.version,
                    "missing row (the chain has it, the store does not)",
                ),
                count,
                head.hex(),
                position,
            )
        if stored is None:
            problem = "extra row (the store has it, the chain does not)"
            return Verdict(
                Finding(row.position, row.originator_id, row.version, problem),
                count,
                head.hex(),
                position,
            )
        here = Finding(row.position, row.originator_id, row.version, "")
        if (stored.originator_id, stored.version) != (row.originator_id, row.version):
            problem = (
                f"order: the chain has aggregate {stored.originator_id} version"
                f" {stored.version} here"
            )
            return Verdict(_at(here, problem), count, head.hex(), position)
        before_row = last.get(row.originator_id)
        if before_row is None:
            before = GENESIS
            if row.version > 1:
                found = previous_event(row.originator_id, row.version - 1)
                if found is None:
                    problem = f"missing row: version {row.version - 1} of this aggregate is absent"
                    return Verdict(_at(here, problem), count, head.hex(), position)
                before = found
        else:
            if row.version != before_row[0] + 1:
                problem = f"missing row: version {before_row[0] + 1} of this aggregate is absent"
                return Verdict(_at(here, problem), count, head.hex(), position)
            before = before_row[1]
        mine = event_hash(before, row)
        if mine.hex() != stored.event_hash:
            problem = "hash mismatch: the stored row is not the row that was chained"
            return Verdict(_at(here, problem), count, head.hex(), position)
        head = log_hash(head, mine)
        if head.hex() != stored.log_hash:
            problem = "hash mismatch in the log chain: a row before it was removed or reordered"
            return Verdict(_at(here, problem), count, head.hex(), position)
        last[row.originator_id] = (row.version, mine)
        position = row.position
        seen = seen or head.hex() == expect
    return Verdict(None, count, head.hex(), position, seen)


def _at(finding: Finding, problem: str) -> Finding:
    return Finding(finding.position, finding.originator_id, finding.version, problem)


def _merge(rows: Iterable[Row], links: Iterable[Link]) -> Iterator[tuple[Row | None, Link | None]]:
    """Pairs by position: (row, link), (row, None) or (None, link)."""
    r_it, l_it = iter(rows), iter(links)
    row, lnk = next(r_it, None), next(l_it, None)
    while row is not None or lnk is not None:
        if lnk is None or (row is not None and row.position < lnk.position):
            yield row, None
            row = next(r_it, None)
        elif row is None or lnk.position < row.position:
            yield None, lnk
            lnk = next(l_it, None)
        else:
            yield row, lnk
            row, lnk = next(r_it, None), next(l_it, None)
