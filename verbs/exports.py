"""Exports for analysts and other systems: whole records as CSV or JSON, changed since T.

CSV cells that a spreadsheet would run as a formula (starting with =, +, -, @, a tab or a
carriage return) are prefixed with `'`; control characters are shown escaped, as in every
other output. Booleans are `true`/`false`, amounts integer minor units, times ISO 8601 UTC.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import click

from verbs.app import App, parse_time
from verbs.command import require_personal_data
from verbs.render import escape, to_json

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CHUNK = 1000  # rows written at a time
KINDS = ("customers", "subscriptions", "invoices", "payments", "credit-notes")


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell that no spreadsheet runs and no terminal obeys."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = escape(value)
        return f"'{text}" if value.startswith(FORMULA_START) else text
    return value


def _person(app: App, customer_id: str) -> dict[str, Any] | None:
    """Name and email through the vault, now; None once the customer is erased."""
    from domain.errors import LedgerError

    try:
        profile = app.runtime.ledger.customer_profile(customer_id)
    except LedgerError:
        return None
    return None if profile.get("erased") else profile


@click.command("export")
@click.argument("kind", type=click.Choice(KINDS))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json"]),
    default="csv",
    show_default=True,
    help="CSV (one header row) or JSON (an array of objects).",
)
@click.option("--since", help="Only records changed at or after this time (ISO 8601, UTC).")
@click.pass_obj
def export(app: App, kind: str, fmt: str, since: str | None) -> None:
    """Export every customer, subscription, invoice, payment or credit note (README: columns)."""
    from projections import exports

    if kind == "customers":  # names and emails; the other kinds hold none
        require_personal_data(app, "export customers")
    since_at = parse_time(since, "--since")
    db = app.runtime.db
    rows = exports.export(db, kind, since_at, lambda cid: _person(app, cid))
    if fmt == "json":
        _json(rows)
    else:
        _csv(rows, exports.COLUMNS[kind])


def _csv(rows: Any, columns: tuple[str, ...]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for i, row in enumerate(rows, 1):
        writer.writerow([csv_cell(row[name]) for name in columns])
        if i % CHUNK == 0:
            click.echo(buffer.getvalue(), nl=False)
            buffer.seek(0)
            buffer.truncate()
    click.echo(buffer.getvalue(), nl=False)


def _json(rows: Any) -> None:
    """An array, one object per line, written as it is read."""
    first = True
    click.echo("[", nl=False)
    for row in rows:
        click.echo(("\n" if first else ",\n") + to_json(row, indent=None), nl=False)
        first = False
    click.echo("\n]" if not first else "]")


COMMANDS: list[click.Command] = [export]
