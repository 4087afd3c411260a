"""One benchmark run, every figure against a ceiling measured in the same run (issue 13).

With the services up (`./dev services up; eval "$(./dev services env)"`):

    .venv/bin/python bench/run.py [--quick] [--json] [--only KEY[,KEY]]

Keys: ledger, ingest, ingest_2_workers, latency_ms, projections, replay, simulate,
memory_mb. Each run makes fresh databases, topics and data dirs and drops them after. It
prints a table, or with --json one object (bench/report.py gives its shape). --quick
finishes in under 5 minutes on a 2-core machine, the full run in under 20.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from typing import Any

import ceilings
import harness
import measure
import report
from peer import peer_rate

SECTIONS = ("ledger", "ingest", "ingest_2_workers", "latency_ms", "projections", "replay")
SECTIONS += ("simulate", "memory_mb")
SIZES = {  # quick, full
    "customers": (400, 2000),  # the book through the pipeline: ~2.35 commands each
    "latency_s": (15, 45),
    "simulate": (2000, 10000),
    "memory": (150, 600),
}


def log(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def run(only: set[str], quick: bool) -> dict[str, Any]:
    size = {name: pair[0 if quick else 1] for name, pair in SIZES.items()}
    # as `serve` runs its workers: the ones measured in this process, and every ceiling
    from consumers.serve import fewer_collections

    fewer_collections()
    measured: dict[str, dict[str, Any]] = {}
    dbs = harness.Databases()
    configs = []
    try:
        if "ledger" in only:
            log("ledger: execute_batch on PostgreSQL")
            measured["ledger"] = measure.ledger(dbs, size["customers"])
        book = None
        if only & {"ingest", "latency_ms", "projections", "replay"}:
            log("ingest: the pipeline, one command worker")
            pipeline = measure.Pipeline(dbs, size["customers"])
            configs.append(pipeline.config)
            latency_s = size["latency_s"] if "latency_ms" in only else 0
            book = pipeline.run(latency_s=latency_s)
            latency = book.pop("latency", None)
            if latency is not None:
                measured["latency_ms"] = latency
            if "ingest" in only:
                log("ingest: its ceiling")
                book["ceiling_events_per_s"] = ceilings.postgres_insert(dbs, book["events"])
                measured["ingest"] = book
        if "ingest_2_workers" in only:
            log("ingest: the pipeline, two command workers on two partitions")
            pipeline2 = measure.Pipeline(dbs, size["customers"], workers=2)
            configs.append(pipeline2.config)
            two = pipeline2.run()
            ceiling = measured.get("ingest", {}).get("ceiling_events_per_s")
            two["ceiling_events_per_s"] = ceiling or ceilings.postgres_insert(dbs, two["events"])
            measured["ingest_2_workers"] = two
        if "projections" in only:
            log("projections: each alone, from the events topic")
            source = configs[0]
            found = measure.projections_rate(dbs, source)
            log("projections: the bare consumer, and eventsourcing's ProjectionRunner")
            found["ceiling_events_per_s"], _ = ceilings.kafka_decode(source)
            from bootstrap import Runtime

            with Runtime(source) as runtime:
                head = runtime.ledger.recorder.max_notification_id() or 0
            found["peer_events_per_s"] = peer_rate(source, head)
            measured["projections"] = found
        if "replay" in only:
            log("replay: every read model rebuilt from the store")
            measured["replay"] = measure.replay(dbs, configs[0])
        if "simulate" in only:
            log(f"simulate: {size['simulate']} customers x 12 months, embedded")
            measured["simulate"] = measure.simulate(size["simulate"])
        if "memory_mb" in only:
            log("memory: the command worker after 1x and 10x the history")
            measured["memory_mb"] = measure.memory(dbs, size["memory"])
    finally:
        for config in configs:
            harness.delete_topics(config)
            shutil.rmtree(config.data_dir, ignore_errors=True)
        dbs.close()
    return measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes: under 5 minutes")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    parser.add_argument("--only", default="", help=f"a subset: KEY[,KEY] of {', '.join(SECTIONS)}")
    args = parser.parse_args(argv)
    only = {key.strip() for key in args.only.split(",") if key.strip()} or set(SECTIONS)
    if unknown := only - set(SECTIONS):
        print(f"error: unknown --only keys {sorted(unknown)}; known: {', '.join(SECTIONS)}")
        return 2
    began = time.monotonic()
    result = report.report(run(only, args.quick))
    result["run"] = {"quick": args.quick, "seconds": round(time.monotonic() - began, 1)}
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        from rich.console import Console

        Console().print(report.table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
