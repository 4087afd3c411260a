"""The pipeline: read models' status, catch-up and rebuild, and the Kafka workers."""

from __future__ import annotations

from typing import Any

import click

from domain.errors import InvalidInput
from verbs.app import App
from verbs.errors import Failure
from verbs.options import format_option
from verbs.render import show

# consumers.serve.WORKERS, spelled out so that `--help` loads no Kafka client (a test holds
# the two equal)
DEFAULT_WORKERS = "commands,relay,projections,scheduler,payments,notifications,webhooks"


@click.group()
def projections() -> None:
    """Read models: status, rebuild."""


@projections.command("status")
@format_option
@click.pass_obj
def projections_status(app: App, fmt: str) -> None:
    """Each projection's position and lag behind the event store's head, and where it is
    stuck if an event made it fail (`stuck`: empty, or position, event and reason)."""
    from consumers.embedded import stuck_at
    from projections.base import get_faults

    app.warn_stuck = False  # the `stuck` column says it

    def stuck(fault: dict[str, Any] | None) -> Any:
        if fmt == "json":
            keys = ("position", "event", "reason", "recorded_at")
            return {k: fault[k] for k in keys} if fault else None
        return stuck_at(fault) if fault else ""

    if app.config.kafka_bootstrap and not app.config.embedded:
        from consumers.projector import status

        runtime = app.runtime
        state = status(app.config, runtime.ledger, runtime.projections, runtime.db)
        faults = {(f["projection"], f["source"]): f for f in get_faults(runtime.db)}
        topic = app.config.events_topic
        for row in state["partitions"]:
            name = row["projection"]
            fault = faults.get((name, f"{topic}:{row['partition']}")) or faults.get((name, "log"))
            row["stuck"] = stuck(fault)
        click.echo(f"event store head {state['head']}, relayed up to {state['relay']}")
        show(state["partitions"], fmt)
        return
    feeder = app.runtime.feeder
    head = feeder.head()
    faults = feeder.faults()
    show(
        [
            {
                "projection": name,
                "position": pos,
                "head": head,
                "lag": head - pos,
                "stuck": stuck(faults.get(name)),
            }
            for name, pos in feeder.positions().items()
        ],
        fmt,
    )


@projections.command("wait")
@click.option(
    "--timeout", type=click.FloatRange(0, 86_400, min_open=True), default=60.0, show_default=True
)
@click.pass_obj
def projections_wait(app: App, timeout: float) -> None:
    """Return once every projection has caught up with the event store's head."""
    if not (app.config.kafka_bootstrap and not app.config.embedded):
        app.runtime.catch_up()
        return
    from consumers.projector import wait_caught_up

    runtime = app.runtime
    if not wait_caught_up(app.config, runtime.ledger, runtime.projections, runtime.db, timeout):
        raise Failure(f"projections not caught up within {timeout:g}s")


@projections.command("rebuild")
@click.argument("names", metavar="[NAME]...", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every read model, in one pass.")
@format_option
@click.pass_obj
def projections_rebuild(app: App, names: tuple[str, ...], every: bool, fmt: str) -> None:
    """Drop read models and rebuild them from the event store, in one pass over it.

    Name them (`billing`, `metrics`, ...) or give --all. With Kafka, stop their workers
    first; they resume after the rebuild.
    """
    from consumers.embedded import ProjectionStuck, stuck_at
    from projections.base import get_faults

    app.warn_stuck = False  # the rebuild clears the fault, or says where it stopped again
    runtime = app.runtime
    known = {p.name: p for p in runtime.projections}
    if every == bool(names):
        what = "name them or give --all, not both" if every else "name them or give --all"
        raise InvalidInput(f"which read models to rebuild? {what} (known: {', '.join(known)})")
    if unknown := [n for n in names if n not in known]:
        raise InvalidInput(f"unknown projection '{unknown[0]}' (known: {', '.join(known)})")
    chosen = list(known.values()) if every else [known[n] for n in dict.fromkeys(names)]
    label = ", ".join(p.name for p in chosen)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn(f"[bold]rebuilding {label}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("events"), disable=fmt != "table", transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task(label, total=runtime.feeder.head())

        def progress(position: int, head: int) -> None:
            bar.update(task, completed=position, total=head)

        if runtime.kafka_mode:  # rows from the store, then the Kafka groups resume at the end
            from consumers.projector import rebuild_from_store

            applied = rebuild_from_store(
                app.config, runtime.ledger, chosen, runtime.db, progress=progress
            )
            faults = [f for p in chosen for f in get_faults(runtime.db, p.name)[:1]]
        else:
            try:
                applied = runtime.feeder.rebuild(chosen, progress)
                faults = []
            except ProjectionStuck as stopped:
                faults = [stopped.fault]
    if faults:  # the fault is recorded, the read model stays at the event before it
        fault = faults[0]
        raise Failure(
            f"rebuilding {fault['projection']} stopped: {stuck_at(fault)}; the read model"
            " stays there (see 'subledger projections status'); this is a bug to report"
        )
    rows = [{"projection": p.name, "events_applied": applied} for p in chosen]
    show(rows[0] if len(rows) == 1 else rows, fmt)


@click.command()
@click.option(
    "--clock",
    "clock_",
    type=click.Choice(["wall", "manual"]),
    default="wall",
    show_default=True,
    help="wall: due work runs by wall time (an AdvanceClock every --tick seconds); manual: "
    "only when a `clock advance --to T` command arrives.",
)
@click.option(
    "--workers",
    default=DEFAULT_WORKERS,
    show_default=True,
    help="Comma-separated, any of the default list: commands (the ledger), relay (events to "
    "Kafka), projections (read models), scheduler (due work), payments (charges and refunds; "
    "needs SUBLEDGER_GATEWAY), notifications (email and in-app), webhooks.",
)
@click.option(
    "--tick",
    type=click.FloatRange(0.1, 86_400),
    default=60.0,
    show_default=True,
    help="With --clock wall: seconds between clock ticks.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Serve Prometheus metrics at /metrics, and /healthz and /readyz, on this port.",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="The address the metrics port listens on (0.0.0.0: every interface).",
)
@click.pass_obj
def serve(
    app: App, clock_: str, workers: str, tick: float, metrics_port: int | None, metrics_host: str
) -> None:
    """Run the Kafka pipeline's workers until SIGTERM/SIGINT. A worker that loses PostgreSQL
    or Kafka logs one line, waits (1 s, 2 s, ... at most 30 s) and starts again from where
    its work is recorded; serve itself stops only on a signal or a bad setting."""
    import logging

    from bootstrap import serve as run  # the composition root hands the workers their parts
    from domain.limits import quote

    level = app.config.log_level.strip().upper()
    if level not in logging.getLevelNamesMapping():
        raise InvalidInput(
            f"SUBLEDGER_LOG_LEVEL: {quote(app.config.log_level)} is not a log level;"
            " set DEBUG, INFO, WARNING or ERROR"
        )
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(threadName)s %(levelname)s %(message)s",
    )
    names = [w.strip() for w in workers.split(",") if w.strip()]
    try:
        address = (metrics_host, metrics_port) if metrics_port else None
        code = run(app.config, names, clock=clock_, tick_s=tick, metrics_address=address)
    except (ValueError, RuntimeError) as exc:
        raise Failure(str(exc)) from None
    if code:
        raise Failure("a worker failed (see the log)")


STATUS_COLUMNS = ("section", "name", "partition", "position", "end", "lag", "detail")


@click.command()
@format_option
@click.pass_obj
def status(app: App, fmt: str) -> None:
    """How the ledger is doing, at a glance: with Kafka, each commands partition's lag, the
    relay's lag, each projection's lag and stopped partitions (with the reason), rejected
    commands in the last hour by code, each serve worker's state and reconnects; always the
    store's head, the ledger clock and what is due next. JSON keys: mode, head, commands,
    relay, projections, rejected, workers, clock, due."""
    from consumers.health import snapshot, status_rows

    app.warn_stuck = False  # a stopped projection is a row here
    state = snapshot(app.runtime)
    if fmt == "json":
        show(state, fmt)
        return
    show(status_rows(state), fmt, columns=STATUS_COLUMNS)


COMMANDS: list[click.Command] = [projections, serve, status]
