"""A simulated book through the real commands, and the demo that prints it."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from domain import commands as c
from domain.errors import InvalidInput
from domain.money import format_amount
from verbs import render
from verbs.app import App
from verbs.options import format_option
from verbs.render import show


def run_simulation(
    app: App, customers: int, months: int, seed: int, quiet: bool = False
) -> dict[str, Any]:
    """Drive the ledger day by day through the simulated commands; the counts it made."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from domain.simulation import Simulation

    sim = Simulation(customers=customers, months=months, seed=seed)
    ledger = app.runtime.ledger
    counts = {"commands": 0, "rejected": 0}
    # the read models fed by a process of their own meanwhile, brought to the end after
    with (
        app.runtime.feeding_apart() as apart,
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("days"),
            TimeElapsedColumn(),
            disable=quiet,
            transient=False,
        ) as progress,
    ):
        task = progress.add_task("simulating", total=sim.days)
        for result in ledger.execute_batch(sim.setup()):
            counts["commands"] += 1
            if not result.ok:
                counts["rejected"] += 1
        for index in range(sim.days):
            day, day_commands = sim.day(index)
            batch = [
                c.AdvanceClock(
                    command_id=f"sim-{seed}-clock-{index}",
                    at=day,
                    actor="simulator",
                    source="simulator",
                ),
                *day_commands,
            ]
            for result in ledger.execute_batch(batch):
                counts["commands"] += 1
                counts["rejected"] += 0 if result.ok else 1
            if not apart:
                app.settle()
            progress.update(task, advance=1)
        end = c.AdvanceClock(
            command_id=f"sim-{seed}-clock-end", at=sim.end, actor="simulator", source="simulator"
        )
        ledger.execute_batch([end])
    app.settle()
    counts["events"] = ledger.recorder.max_notification_id() or 0
    counts["start"], counts["end"] = sim.start, sim.end
    return counts


@click.command()
@click.option("--customers", type=click.IntRange(0, 1_000_000), default=1000, show_default=True)
@click.option("--months", type=click.IntRange(1, 120), default=12, show_default=True)
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=1, show_default=True)
@format_option
@click.pass_obj
def simulate(app: App, customers: int, months: int, seed: int, fmt: str) -> None:
    """Make a realistic book through the real commands (into an empty data dir)."""
    import time as wall

    if app.runtime.ledger.recorder.max_notification_id():
        raise InvalidInput("simulate needs an empty ledger: use a fresh --data-dir")
    began = wall.monotonic()
    counts = run_simulation(app, customers, months, seed, quiet=fmt == "json")
    counts["seconds"] = round(wall.monotonic() - began, 1)
    show(counts, fmt)


@click.command()
@click.option("--customers", type=click.IntRange(0, 1_000_000), default=200, show_default=True)
@click.option("--months", type=click.IntRange(1, 120), default=12, show_default=True)
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=7, show_default=True)
@click.pass_obj
def demo(app: App, customers: int, months: int, seed: int) -> None:
    """A small simulated year, then the book: MRR by month, movements, churn, invoices."""
    if not app.runtime.ledger.recorder.max_notification_id():
        click.echo(
            f"Simulating {customers} customers over {months} months (seed {seed}) "
            f"into {app.config.data_dir}/ ..."
        )
        counts = run_simulation(app, customers, months, seed)
        click.echo(
            f"{counts['commands']} commands ({counts['rejected']} refused by the rules), "
            f"{counts['events']} events recorded.\n"
        )
    end = app.runtime.ledger.clock_now() or app.runtime.clock()  # where the book stands
    summary(app.runtime.db, end)


def _month_starts(end: datetime, count: int) -> list[datetime]:
    """The first instants of the `count` months up to `end`'s month, and the one after."""
    year, month = end.year, end.month
    out = []
    for _ in range(count + 1):
        out.append(datetime(year, month, 1, tzinfo=UTC))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return sorted(out)


def _next_month(start: datetime) -> datetime:
    return (start + timedelta(days=32)).replace(day=1)


def summary(db: Any, end: datetime) -> None:
    """The book as an operator reads it: month by month, then churn, revenue, invoices."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from projections import reports

    console = Console(width=130)

    def say(line: str, style: str = "") -> None:  # ids are user text: never markup
        console.print(Text(render.escape(line), style=style))

    months = _month_starts(end - timedelta(seconds=1), 12)[1:]
    months.append(_next_month(months[-1]))
    first, last = months[0], months[-1]
    now = reports.mrr(db, end)
    say(f"The book as of {end:%Y-%m-%d %H:%M} UTC", style="bold")
    for currency, m in now.items():
        say(
            f"  {currency}: MRR {currency} {format_amount(m['mrr'], currency)} · ARR "
            f"{currency} {format_amount(m['arr'], currency)} · {m['paying_customers']} paying "
            f"customers · ARPU {currency} {format_amount(m['arpu'], currency)} · "
            f"{m['active_subscriptions']} active subscriptions"
        )
    for currency in now:
        table = Table(title=Text(render.escape(f"MRR movements by month ({currency})")))
        for column in (
            "month",
            "new",
            "expansion",
            "contraction",
            "churn",
            "reactivation",
            "net",
            "MRR at month end",
            "logo churn",
        ):
            table.add_column(column, justify="right")
        for a, b in itertools.pairwise(months):
            mv = reports.movements(db, a, b).get(currency, {})
            ch = reports.churn(db, a, b).get(currency, {})
            at_end = reports.mrr(db, b - timedelta(seconds=1)).get(currency, {}).get("mrr", 0)
            rate = ch.get("logo_churn_rate")
            cells = [
                f"{a:%Y-%m}",
                *[
                    format_amount(mv.get(k, 0), currency)
                    for k in ("new", "expansion", "contraction", "churn", "reactivation", "net")
                ],
                format_amount(at_end, currency),
                "-" if rate is None else f"{rate:.1%}",
            ]
            table.add_row(*[Text(cell) for cell in cells])
        console.print(table)
    quarter = months[-4]
    for currency, ch in reports.churn(db, quarter, last).items():
        if ch.get("logo_churn_rate") is None:
            continue
        say(
            f"Last 3 months ({currency}): logo churn {ch['logo_churn_rate']:.1%}, revenue "
            f"churn {ch['revenue_churn_rate']:.1%}, net revenue churn "
            f"{ch['net_revenue_churn_rate']:.1%}"
            + (
                f", trial conversion {ch['trial_conversion_rate']:.0%}"
                if ch.get("trial_conversion_rate") is not None
                else ""
            )
        )
    for currency, rv in reports.revenue(db, first, last).items():
        say(
            f"Revenue ({currency}): billed {format_amount(rv['billed'], currency)} (tax "
            f"{format_amount(rv['tax'], currency)}), collected "
            f"{format_amount(rv['collected'], currency)}, written off "
            f"{format_amount(rv['written_off'], currency)}, outstanding "
            f"{format_amount(rv['outstanding'], currency)}"
        )
    rows = reports.invoices(db)
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    say(
        f"Invoices: {len(rows)} ({', '.join(f'{v} {k}' for k, v in statuses.items())}); the latest:"
    )
    for row in rows[-3:]:
        lines = ", ".join(
            f"{ln['kind']} {format_amount(ln['amount'], row['currency'])}" for ln in row["lines"]
        )
        say(
            f"  {row['number']} {row['issued_at']} {row['subscription_id']} "
            f"{row['currency']} {format_amount(row['total'], row['currency'])} "
            f"{row['status']}: {lines}"
        )


COMMANDS: list[click.Command] = [simulate, demo]
