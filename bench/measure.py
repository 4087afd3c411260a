"""Each figure of bench/run.py, measured on fresh databases and topics (harness.Databases)."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import ceilings
import harness

from bootstrap import Config, Runtime, projections
from consumers import kafka as k
from consumers.projector import ProjectionWorker, rebuild_from_store, wait_caught_up
from domain import commands as c
from projections.db import ReadDB


def ledger(dbs: harness.Databases, customers: int) -> dict[str, Any]:
    """Commands/s of `Ledger.execute_batch` (batches of 500) on PostgreSQL, no Kafka."""
    mix = harness.Mix("l", customers)
    with Runtime(dbs.config(kafka=False)) as runtime:
        runtime.ledger.execute_batch(mix.plans())
        book = [*mix.book(), mix.advance()]
        head = runtime.ledger.recorder.max_notification_id() or 0
        began = time.monotonic()
        for i in range(0, len(book), 500):
            runtime.ledger.execute_batch(book[i : i + 500])
        seconds = time.monotonic() - began
        events = (runtime.ledger.recorder.max_notification_id() or 0) - head
    return {"commands_per_s": len(book) / seconds, "events_per_s": events / seconds}


class Pipeline:
    """A book through `subledger serve` (commands x `workers`, relay, projections): the
    ingest figures, then (optionally) latency at a steady rate on the same processes."""

    def __init__(
        self,
        dbs: harness.Databases,
        customers: int,
        workers: int = 1,
        wrap: dict[str, list[str]] | None = None,
    ) -> None:
        self.config = dbs.config()
        self.wrap = wrap
        self.customers, self.workers = customers, workers
        self.mix = harness.Mix("p", customers)

    def run(self, latency_s: float = 0.0, latency_share: float = 0.6) -> dict[str, Any]:
        config = self.config
        if self.workers > 1:
            harness.create_commands_topic(config, self.workers)
        else:
            k.ensure_topics(config)
        kinds = ["commands"] * self.workers + ["relay", "projections"]
        with harness.Serve(config, kinds, self.wrap), Runtime(config) as runtime:
            up = harness.Upstream(config)
            try:
                for command in self.mix.plans():
                    up.send(command)
                up.wait_applied(runtime.ledger, timeout=180)
                assert wait_caught_up(config, runtime.ledger, runtime.projections, runtime.db, 180)
                head = runtime.ledger.recorder.max_notification_id() or 0
                began = time.monotonic()
                book = self.mix.book()
                for phase in (self.mix.signups(), self.mix.changes()):
                    for command in phase:
                        up.send(command)
                    up.wait_applied(runtime.ledger, timeout=1200)
                up.send(self.mix.advance())
                up.wait_applied(runtime.ledger, timeout=1200)
                ok = wait_caught_up(config, runtime.ledger, runtime.projections, runtime.db, 1200)
                assert ok, "the read models did not catch up"
                seconds = time.monotonic() - began
                events = (runtime.ledger.recorder.max_notification_id() or 0) - head
                figures: dict[str, Any] = {
                    "commands_per_s": (len(book) + 1) / seconds,
                    "events_per_s": events / seconds,
                    "commands": len(book) + 1,
                    "events": events,
                }
                if latency_s:
                    rate = latency_share * figures["commands_per_s"]
                    figures["latency"] = self.latency(up, rate, latency_s)
                return figures
            finally:
                up.close()

    def latency(self, up: harness.Upstream, rate: float, seconds: float) -> dict[str, Any]:
        """Publish → the subscription's row in the billing read model, `rate` commands/s."""
        sent: dict[str, float] = {}
        seen: dict[str, float] = {}
        done = threading.Event()

        def watch() -> None:
            db = ReadDB(self.config.read_db_url())
            try:
                deadline = None
                while True:
                    pending = [s for s in list(sent) if s not in seen]
                    if pending:
                        marks = ",".join("?" * len(pending))
                        rows = db.query(
                            "SELECT subscription_id FROM subscriptions"
                            f" WHERE subscription_id IN ({marks})",
                            pending,
                        )
                        now = time.monotonic()
                        for row in rows:
                            seen[row["subscription_id"]] = now
                    if done.is_set():
                        deadline = deadline or time.monotonic() + 60
                        if len(seen) == len(sent) or time.monotonic() > deadline:
                            return
                    time.sleep(0.01)
            finally:
                db.close()

        watcher = threading.Thread(target=watch, name="bench-latency")
        watcher.start()
        at = self.mix.start + timedelta(days=40)
        n = max(int(rate * seconds), 10)
        began = time.monotonic()
        try:
            for i in range(n):
                time.sleep(max(0.0, began + i / rate - time.monotonic()))
                sid = f"lat-{i}"
                command = c.Subscribe(
                    command_id=f"p-lat-{i}",
                    at=at,
                    subscription_id=sid,
                    customer_id=f"cust-{(2 * i) % self.customers}",  # none of them canceled
                    plan_id="pro",
                )
                sent[sid] = time.monotonic()
                up.send(command)
            offered = n / (time.monotonic() - began)
            up.producer.flush()
        finally:
            done.set()
            watcher.join()
        waits = sorted((seen[s] - sent[s]) * 1000 for s in seen)
        cuts = (
            statistics.quantiles(waits, n=100, method="inclusive") if len(waits) > 1 else waits * 99
        )
        return {
            "p50": round(cuts[49], 1),
            "p99": round(cuts[98], 1),
            "at_commands_per_s": round(offered, 1),
            "commands": n,
            "not_visible": n - len(waits),
        }


def projections_rate(dbs: harness.Databases, source: Config) -> dict[str, Any]:
    """Each Kafka-fed projection alone, from the events topic (as `source`'s pipeline left
    it) to committed rows in a fresh read DB; the slowest is the figure. Measured as its
    ceiling is: the best of polls of 100, 500 and 1,000 messages (`ceilings.best`)."""
    rates: dict[str, float] = {}
    total = 0
    for projection in projections():

        def measure(batch: int, projection: Any = projection) -> float:
            nonlocal total
            tag = uuid.uuid4().hex[:8]
            config = source.with_overrides(
                read_db=dbs.create(f"bench_pj_{tag}"), group_prefix=f"bench-pj-{tag}"
            )
            ends = k.end_offsets(config, config.events_topic, "bench-ends")
            total = sum(ends.values())
            worker = ProjectionWorker(config, projection, max_records=batch)
            try:
                began, seen = None, 0
                # the stored positions are read (which waits for the last commit) only once
                # every message was consumed, as a worker's own loop never reads them
                while seen < total or any(
                    (worker.stored(tp.partition) or 0) < end for tp, end in ends.items()
                ):
                    started = time.monotonic()
                    if (done := worker.poll_once()) and began is None:
                        began = started  # from the first batch: the group's join is not its cost
                    seen += done
                return total / (time.monotonic() - (began or time.monotonic()))
            finally:
                worker.close()

        rates[projection.name] = ceilings.best(measure)
    slowest = min(rates, key=lambda name: rates[name])
    return {"events_per_s": rates[slowest], "slowest": slowest, "events": total, "each": rates}


def replay(dbs: harness.Databases, source: Config) -> dict[str, Any]:
    """`projections rebuild --all` (rebuild_from_store: every read model in one pass over
    the store) from `source`'s PostgreSQL store into a fresh read DB; and its ceiling."""
    tag = uuid.uuid4().hex[:8]
    config = source.with_overrides(
        read_db=dbs.create(f"bench_rp_{tag}"), group_prefix=f"bench-rp-{tag}"
    )
    with Runtime(config) as runtime:
        head = runtime.ledger.recorder.max_notification_id() or 0
        ceiling = ceilings.store_decode(runtime.ledger)
        began = time.monotonic()
        rebuild_from_store(config, runtime.ledger, runtime.projections, runtime.db)
        seconds = time.monotonic() - began
    return {"events_per_s": head / seconds, "ceiling_events_per_s": ceiling, "events": head}


# the simulation's customers break a rule now and then (about 1 command in 100: cancel a
# canceled subscription, ...); a refused share above this is a book the rules stop: one
# that a missed reminder bricked in July was measured, unseen, with 46 % of it refused
REFUSED_AT_MOST = 0.05


def simulate(customers: int, months: int = 12) -> dict[str, Any]:
    """`subledger simulate` on the embedded default (a fresh data dir), as a user runs it."""
    folder = Path(f"/tmp/bench-sim-{uuid.uuid4().hex[:8]}")
    keep = ("PATH", "HOME", "PYTHONPATH", "LANG", "TMPDIR")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env["SUBLEDGER_DATA_DIR"] = str(folder)
    cmd = [harness.SUBLEDGER, "simulate", "--customers", str(customers), "--months", str(months)]
    try:
        began = time.monotonic()
        done = subprocess.run([*cmd, "--format", "json"], env=env, capture_output=True, check=True)
        seconds = time.monotonic() - began
        counts = json.loads(done.stdout)
        events = int(counts["events"])
        if counts["rejected"] > REFUSED_AT_MOST * counts["commands"]:  # a book the rules stop
            raise RuntimeError(
                f"simulate refused {counts['rejected']} of {counts['commands']} commands:"
                " that book is broken, and its figure would not be a speed"
            )
        ceiling = ceilings.sqlite_insert(folder, events)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "seconds": round(seconds, 1),
        "events_per_s": events / seconds,
        "ceiling_events_per_s": ceiling,
        "customers": customers,
        "months": months,
        "events": events,
        "commands": counts["commands"],
        "rejected": counts["rejected"],
    }


def worker_memory(dbs: harness.Databases, customers: int, months: int) -> float:
    """Peak RSS (MB) of a `serve --workers commands` process on a store holding `months`
    months of `customers` customers' history, after it applied a plan change for each of
    them and a month's renewals."""
    config = dbs.config()
    mix = harness.Mix("m", customers)
    history = config.with_overrides(
        kafka_bootstrap="", read_db=dbs.create(f"bench_mh_{uuid.uuid4().hex[:8]}")
    )
    with Runtime(history) as runtime:
        runtime.ledger.execute_batch(mix.plans())
        book = mix.book()
        for i in range(0, len(book), 500):
            runtime.ledger.execute_batch(book[i : i + 500])
        for month in range(1, months + 1):
            runtime.ledger.execute_batch([mix.advance(month)])
    k.ensure_topics(config)
    at = mix.start + timedelta(days=31 * months + 5)
    with harness.Serve(config, ["commands"]) as serve, Runtime(config) as runtime:
        up = harness.Upstream(config)
        try:
            for i in range(customers):
                plan = "pro" if i % 2 else "basic"
                cid, sid = f"cust-{i}", f"sub-{i}"
                up.send(
                    c.ChangePlan(
                        command_id=f"m-flip-{i}",
                        at=at,
                        subscription_id=sid,
                        plan_id=plan,
                        customer_id=cid,
                    )
                )
            up.wait_applied(runtime.ledger, timeout=1200)
            up.send(mix.advance(months + 1))
            up.wait_applied(runtime.ledger, timeout=1200)
            return round(harness.peak_rss_mb(serve.procs[0].pid), 1)
        finally:
            up.close()


def memory(dbs: harness.Databases, customers: int, months: int = 1) -> dict[str, Any]:
    return {
        "worker_1x": worker_memory(dbs, customers, months),
        "worker_10x": worker_memory(dbs, customers, 10 * months),
        "customers": customers,
        "months_1x": months,
    }
