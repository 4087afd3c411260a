"""What the CLI prints: tables for people, JSON and CSV for machines.

User text is data here, never markup or terminal control: table cells and titles are rich
`Text` objects, control and bidi characters are shown escaped, and amounts stay integer
minor units everywhere except in the table a person reads.
"""

from __future__ import annotations

import csv
import io
import json
import re
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import click

from domain.money import format_amount

# Integer minor units of the row's currency: formatted ("10.00") in tables only.
AMOUNT_COLUMNS = frozenset(
    {
        "amount",
        "amount_due",
        "amount_off",
        "amount_paid",
        "arpu",
        "arr",
        "billed",
        "billed_net",
        "churn",
        "churned_mrr",
        "collected",
        "contraction",
        "contraction_mrr",
        "credit",
        "credit_applied",
        "credit_balance",
        "deferred",
        "deferred_at_end",
        "delta",
        "expansion",
        "expansion_mrr",
        "ltv",
        "mrr",
        "mrr_after",
        "mrr_at_start",
        "mrr_before",
        "net",
        "new",
        "outstanding",
        "price",
        "reactivation",
        "reactivation_mrr",
        "recognised",
        "subtotal",
        "tax",
        "total",
        "written_off",
    }
)

# ---- text that cannot take over a terminal --------------------------------------------------

# C0, DEL, C1; the bidi controls and marks; line/paragraph separators; lone surrogates
# (undecodable bytes from argv), which no terminal or encoder takes.
_INVISIBLE = r"\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE = re.compile(rf"[\x00-\x1f\x7f-\x9f{_INVISIBLE}]")
_JSON_UNSAFE = re.compile(rf"[\x7f-\x9f{_INVISIBLE}]")  # json.dumps escapes C0 itself
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in _SHORT:
        return _SHORT[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape(text: str) -> str:
    """Control and bidi characters as visible escapes (`\\x1b`, `\\u202e`, `\\n`): user text
    must not move the cursor, recolour the terminal or reorder what a reader sees."""
    return _UNSAFE.sub(_escaped, text)


def to_json(data: Any, *, indent: int | None = 2, ascii_only: bool = False) -> str:
    """JSON whose strings carry DEL, C1 and bidi controls as `\\u` escapes: still valid JSON."""
    separators = (",", ":") if indent is None else None
    text = json.dumps(
        _plain(data), indent=indent, separators=separators, ensure_ascii=ascii_only, default=str
    )
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


# ---- results ------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _keyed(data: Any) -> bool:
    """A dict of dicts (a report keyed by currency): one row per key."""
    return isinstance(data, dict) and bool(data) and all(isinstance(v, dict) for v in data.values())


def _record(data: Any) -> bool:
    """One object shown as field/value rows."""
    return isinstance(data, dict) and bool(data) and not _keyed(data)


def _rows(data: Any, key: str = "key") -> list[dict[str, Any]]:
    """Flatten for table/CSV: a list of dicts stays; a dict keyed by currency becomes rows."""
    if isinstance(data, list):
        return [
            {k: v for k, v in row.items() if not isinstance(v, list | dict)}
            if isinstance(row, dict)
            else {"value": row}
            for row in data
        ]
    if _keyed(data):
        return [
            {key: k, **{kk: vv for kk, vv in v.items() if not isinstance(vv, list | dict)}}
            for k, v in data.items()
        ]
    if not isinstance(data, dict):
        return [{"value": data}]
    return [
        {"field": k, "value": to_json(v, indent=None) if isinstance(v, list | dict) else v}
        for k, v in data.items()
    ]


def _header(rows: list[dict[str, Any]], columns: Sequence[str]) -> list[str]:
    names = list(columns)
    for row in rows:
        names += [k for k in row if k not in names]
    return names


def _for_csv(value: Any) -> Any:
    return escape(value) if isinstance(value, str) else value


def _for_people(column: str, value: Any, currency: Any) -> str:
    """A table cell: amounts in the currency's decimals, everything else as it is."""
    if value is None:
        return ""
    if (
        column in AMOUNT_COLUMNS
        and isinstance(value, int)
        and not isinstance(value, bool)
        and isinstance(currency, str)
    ):
        try:
            return format_amount(value, currency)
        except Exception:  # an unknown currency: the minor units are still true
            return str(value)
    return str(value)


def show(
    data: Any,
    fmt: str,
    title: str | None = None,
    key: str = "key",
    columns: Sequence[str] = (),
) -> None:
    """Print a result as table, JSON or CSV; `columns` keep the header of an empty result."""
    data = _plain(data)
    if fmt == "json":
        click.echo(to_json(data))
        return
    rows = _rows(data, key)
    record = _record(data)
    names = _header(rows, () if record else columns)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([escape(name) for name in names])
        writer.writerows([_for_csv(row.get(name)) for name in names] for row in rows)
        click.echo(buffer.getvalue(), nl=False)
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(escape(title)) if title else None, show_lines=False)
    for name in names:
        table.add_column(Text(escape(name)))
    for row in rows:
        if record:  # field/value: the object's own currency formats its amounts
            value = _for_people(row["field"], row["value"], data.get("currency"))
            cells = [row["field"], value]
        else:
            cells = [_for_people(name, row.get(name), row.get("currency")) for name in names]
        table.add_row(*[Text(escape(str(cell))) for cell in cells])
    Console(width=max(120, len(names) * 22)).print(table)


def show_outcome(outcome: Any, fmt: str, *, debug: bool = False) -> None:
    """Print what a recorded command did. It is recorded: a failure to render it must not
    report the command as failed, so the outcome falls back to plain JSON and a warning
    (`debug`: with the traceback of why it could not be shown)."""
    try:
        show(outcome, fmt)
    except Exception:
        if debug:
            traceback.print_exc()
        try:
            click.echo(to_json(outcome, indent=None, ascii_only=True))
            click.echo(
                f"warning: the command was recorded, but its outcome could not be shown as "
                f"{fmt}; it is printed above as JSON",
                err=True,
            )
        except Exception:  # nowhere left to print: the exit status still says it was done
            pass
