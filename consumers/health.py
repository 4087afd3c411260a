"""How the pipeline is doing, from the stores and Kafka: `subledger status`, and the gauges
`serve --metrics-port` exposes (consumers/metrics.py), from one snapshot.

Kafka mode: each commands partition's lag (its end offset against the offset the ledger
recorded with its events), the relay's lag (the store's head against what it published),
each projection's lag per partition, stopped partitions with their reason, rejected
commands in the last hour by code, the ledger clock and what is due next. Embedded: the
store's head and each projection's position instead of the Kafka figures.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from consumers import kafka as k
from consumers.commands import tracking_name
from domain.base import iso
from schemas import topics as t

REJECTED_WINDOW = timedelta(hours=1)
REJECTED_SCAN_LIMIT = 100_000  # messages read from the rejected topic at most


def commands_lag(config: Any, ledger: Any) -> list[dict[str, Any]]:
    """Per partition of the commands topic: its end, what the ledger recorded, the lag, and
    where it stopped if a bug stopped it (consumers/faults.py)."""
    from consumers.faults import command_faults

    rows = []
    ends = k.end_offsets(config, config.commands_topic, "subledger-status")
    stopped = command_faults(config.event_store, config.commands_topic)
    for tp, end in sorted(ends.items(), key=lambda item: item[0].partition):
        last = ledger.recorder.max_tracking_id(tracking_name(config.commands_topic, tp.partition))
        applied = 0 if last is None else last + 1
        rows.append(
            {
                "partition": tp.partition,
                "applied": applied,
                "end": end,
                "lag": end - applied,
                "stopped": stopped.get(tp.partition),
            }
        )
    return rows


def rejected_since(config: Any, since: datetime) -> dict[str, int]:
    """Rejected commands recorded on the rejected topic since `since`, by error code."""
    from kafka import TopicPartition

    reader = k.consumer(config, None, client_id="subledger-status-rejected")
    try:
        parts = reader.partitions_for_topic(config.rejected_topic) or set()
        tps = [TopicPartition(config.rejected_topic, p) for p in sorted(parts)]
        if not tps:
            return {}
        ends = reader.end_offsets(tps)
        starts = reader.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in tps})
        todo = {tp: ends[tp] for tp in tps if starts.get(tp) is not None and ends[tp] > 0}
        reader.assign(list(todo))
        for tp in todo:
            reader.seek(tp, starts[tp].offset)
        codes: Counter[str] = Counter()
        read = 0
        deadline = time.monotonic() + 10
        while todo and read < REJECTED_SCAN_LIMIT and time.monotonic() < deadline:
            for tp, messages in reader.poll(timeout_ms=300).items():
                for m in messages:
                    if m.offset >= todo.get(tp, 0):
                        continue
                    read += 1
                    headers = {name: value for name, value in m.headers or []}
                    codes[(headers.get(t.H_ERROR_CODE) or b"unknown").decode(errors="replace")] += 1
                if messages and messages[-1].offset + 1 >= todo.get(tp, 0):
                    todo.pop(tp, None)
        return dict(sorted(codes.items()))
    finally:
        reader.close()


def due_next(db: Any, clock: datetime | None) -> dict[str, Any]:
    """The earliest pending check of any subscription (renewal, trial end, retry) and how
    many are due at the ledger clock."""
    from projections.base import ts

    rows = db.query(
        "SELECT MIN(next_check_at) AS next_at FROM subscriptions WHERE next_check_at IS NOT NULL"
    )
    due_now = 0
    if clock is not None:
        found = db.query(
            "SELECT COUNT(*) AS n FROM subscriptions WHERE next_check_at IS NOT NULL"
            " AND next_check_at <= ?",
            (ts(clock),),
        )
        due_now = int(found[0]["n"])
    return {"next_at": rows[0]["next_at"] if rows else None, "due_at_clock": due_now}


def snapshot(runtime: Any, *, now: datetime | None = None, rejected: bool = True) -> dict:
    """Everything `subledger status` shows, as plain data (the README documents the keys)."""
    config, ledger, db = runtime.config, runtime.ledger, runtime.db
    clock = ledger.clock_now()
    head = ledger.recorder.max_notification_id() or 0
    out: dict[str, Any] = {"mode": "kafka" if runtime.kafka_mode else "embedded", "head": head}
    if runtime.kafka_mode:
        from consumers.projector import status

        state = status(config, ledger, runtime.projections, db)
        faults = {(f["projection"], f["source"]): f for f in state["stuck"]}
        projections = []
        order = {p.name: i for i, p in enumerate(runtime.projections)}
        for row in sorted(
            state["partitions"], key=lambda r: (order[r["projection"]], r["partition"])
        ):
            where = f"{config.events_topic}:{row['partition']}"
            fault = faults.get((row["projection"], where))
            projections.append({**row, "stopped": _stopped(fault)})
        out["commands"] = commands_lag(config, ledger)
        out["relay"] = {"published": state["relay"], "head": head, "lag": head - state["relay"]}
        out["projections"] = projections
        since = (now or datetime.now(UTC)) - REJECTED_WINDOW
        out["rejected"] = rejected_since(config, since) if rejected else None
        out["workers"] = workers(db)
    else:
        feeder = runtime.feeder
        faults = feeder.faults()
        out["commands"] = None  # the CLI applies them at once: nothing queues
        out["relay"] = None
        out["projections"] = [
            {
                "projection": name,
                "partition": None,
                "position": position,
                "end": head,
                "lag": head - position,
                "stopped": _stopped(faults.get(name)),
            }
            for name, position in feeder.positions().items()
        ]
        out["rejected"] = None  # a refused CLI command records nothing and says so at once
        out["workers"] = None
    out["clock"] = iso(clock) if clock else None
    out["due"] = due_next(db, clock)
    return out


def _stopped(fault: dict[str, Any] | None) -> dict[str, Any] | None:
    if not fault:
        return None
    return {k: fault[k] for k in ("position", "event", "reason", "recorded_at")}


def status_rows(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The snapshot as one table: section, name, partition, position, end, lag, detail."""
    rows: list[dict[str, Any]] = []

    def add(section: str, name: str = "", partition: Any = None, **kw: Any) -> None:
        rows.append(
            {
                "section": section,
                "name": name,
                "partition": partition,
                "position": kw.get("position"),
                "end": kw.get("end"),
                "lag": kw.get("lag"),
                "detail": kw.get("detail", ""),
            }
        )

    add("store", "head", position=state["head"], detail=state["mode"])
    for row in state["commands"] or []:
        stop = row.get("stopped")
        detail = f"STOPPED at {stop['position']}: {stop['reason']}" if stop else ""
        add("commands", "ledger", row["partition"], position=row["applied"], end=row["end"],
            lag=row["lag"], detail=detail)  # fmt: skip
    if state["relay"] is not None:
        relay = state["relay"]
        add("relay", "events", position=relay["published"], end=relay["head"], lag=relay["lag"])
    for row in state["projections"]:
        stopped = row["stopped"]
        detail = (
            f"STOPPED at {stopped['position']} ({stopped['event']}): {stopped['reason']}"
            if stopped
            else ""
        )
        add("projection", row["projection"], row["partition"], position=row["position"],
            end=row["end"], lag=row["lag"], detail=detail)  # fmt: skip
    if state["rejected"] is not None:
        if not state["rejected"]:
            add("rejected", "last hour", lag=0, detail="none")
        for code, count in state["rejected"].items():
            add("rejected", code, lag=count, detail="last hour")
    for w in state.get("workers") or []:
        last = f"; last {w['last_reconnect_at']}: {w['last_reason']}" if w["reconnects"] else ""
        add("worker", w["worker"], lag=w["reconnects"],
            detail=f"{w['state']} in {w['process']} since {w['updated_at']}{last}")  # fmt: skip
    add("clock", "ledger", detail=state["clock"] or "not started")
    due = state["due"]
    add("due", "next", lag=due["due_at_clock"], detail=due["next_at"] or "nothing scheduled")
    return rows


@dataclass
class Health:
    """What each of serve's workers is doing now, for /readyz, and how often it had to
    reconnect; `record` (if given) writes each worker's line to the read DB's serve_workers
    table whenever a worker starts or stops, so `subledger status` sees it from outside."""

    record: Any = None  # (worker, state, reconnects, last_reason, last_reconnect_at) -> None
    states: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (state, why)
    reconnects: Counter[str] = field(default_factory=Counter)
    last: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (why, when)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def running(self, name: str) -> None:
        with self.lock:
            self.states[name] = ("running", "")
        self._write(name, "running")

    def backing_off(self, name: str, why: str) -> None:
        with self.lock:
            self.states[name] = ("reconnecting", why)
            self.reconnects[name] += 1
            self.last[name] = (why, iso(datetime.now(UTC)))

    def stopped(self, name: str) -> None:
        with self.lock:
            self.states[name] = ("stopped", "")
        self._write(name, "stopped")

    def not_ready(self) -> list[str]:
        with self.lock:
            return [
                f"{n}: {why or state}"
                for n, (state, why) in self.states.items()
                if state != "running"
            ]

    def _write(self, name: str, state: str) -> None:
        if self.record is None:
            return
        with self.lock:
            why, when = self.last.get(name, (None, None))
            count = self.reconnects[name]
        with suppress(Exception):  # a status line never stops a worker (the store may be away)
            self.record(name, state, count, why, when)


def worker_recorder(read_db_url: str) -> Any:
    """Writes serve_workers lines for this process (`host:pid`) on a short connection each."""
    import os
    import socket

    from projections.db import ReadDB

    process = f"{socket.gethostname()}:{os.getpid()}"

    def record(worker: str, state: str, count: int, why: str | None, when: str | None) -> None:
        db = ReadDB(read_db_url)
        try:
            db.execute(
                "INSERT INTO serve_workers (process, worker, state, reconnects, last_reason,"
                " last_reconnect_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (process, worker) DO UPDATE SET state = excluded.state,"
                " reconnects = excluded.reconnects, last_reason = excluded.last_reason,"
                " last_reconnect_at = excluded.last_reconnect_at,"
                " updated_at = excluded.updated_at",
                (process, worker, state, count, why, when, iso(datetime.now(UTC))),
            )
        finally:
            db.close()

    return record


def workers(db: Any) -> list[dict[str, Any]]:
    """serve's workers as they last wrote their line (the table comes with the read models)."""
    return db.query(
        "SELECT process, worker, state, reconnects, last_reason, last_reconnect_at,"
        " updated_at FROM serve_workers ORDER BY process, worker"
    )
