"""What the CLI prints: tables for people, JSON and CSV for machines, one-line errors.

User text is data here, never markup or terminal control: table cells and titles are rich
`Text` objects, control and bidi characters are shown escaped, and amounts stay integer
minor units everywhere except in the table a person reads.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import click

from domain.money import format_amount
from domain.pci import mask_card_numbers

FORMATS = click.Choice(["table", "json", "csv"])

# ---- the columns each read returns ----------------------------------------------------------
# Declared, so an empty result still prints its header; keys a read adds later are appended.

PLAN_COLUMNS = (
    "plan_id",
    "name",
    "currency",
    "model",
    "price",
    "interval_unit",
    "interval_count",
    "trial_days",
    "features",
    "price_version",
    "retired",
)
SUBSCRIPTION_COLUMNS = (
    "subscription_id",
    "customer_id",
    "plan_id",
    "status",
    "quantity",
    "currency",
    "mrr",
    "current_period_end",
    "cancel_at_period_end",
)
INVOICE_COLUMNS = (
    "number",
    "subscription_id",
    "customer_id",
    "currency",
    "reason",
    "issued_at",
    "period_start",
    "period_end",
    "subtotal",
    "tax",
    "total",
    "credit_applied",
    "amount_due",
    "amount_paid",
    "status",
    "attempts",
)
PAYMENT_COLUMNS = (
    "at",
    "number",
    "subscription_id",
    "customer_id",
    "currency",
    "amount",
    "outcome",
    "attempt",
    "reason",
    "reference",
)
HISTORY_COLUMNS = (
    "version",
    "event",
    "at",
    "status",
    "currency",
    "mrr",
    "actor",
    "command",
    "command_id",
    "source",
)
MRR_COLUMNS = ("currency", "mrr", "arr", "paying_customers", "arpu", "active_subscriptions")
_KINDS = ("new", "expansion", "contraction", "churn", "reactivation")
MOVEMENT_COLUMNS = ("currency", *_KINDS, "net", *(f"{k}_customers" for k in _KINDS))
CHURN_COLUMNS = (
    "currency",
    "customers_at_start",
    "customers_churned",
    "new_customers_churned",
    "logo_churn_rate",
    "mrr_at_start",
    "churned_mrr",
    "contraction_mrr",
    "expansion_mrr",
    "reactivation_mrr",
    "revenue_churn_rate",
    "net_revenue_churn_rate",
    "trials_ended",
    "trials_converted",
    "trial_conversion_rate",
)
COHORT_COLUMNS = ("cohort", "customers")  # then m0, m1, ... as far as the data reaches
REVENUE_COLUMNS = (
    "currency",
    "month",
    "billed",
    "tax",
    "collected",
    "written_off",
    "outstanding",
)

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
        "churn",
        "churned_mrr",
        "collected",
        "contraction",
        "contraction_mrr",
        "credit",
        "credit_applied",
        "credit_balance",
        "delta",
        "expansion",
        "expansion_mrr",
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


def show_outcome(outcome: Any, fmt: str) -> None:
    """Print what a recorded command did. It is recorded: a failure to render it must not
    report the command as failed, so the outcome falls back to plain JSON and a warning."""
    try:
        show(outcome, fmt)
    except Exception:
        if os.environ.get("SUBLEDGER_DEBUG"):
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


def format_option(fn: Callable) -> Callable:
    return click.option(
        "--format",
        "fmt",
        type=FORMATS,
        default="table",
        show_default=True,
        help="Output format; JSON and CSV amounts are integer minor units.",
    )(fn)


# ---- shaping the reads that differ by format ----------------------------------------------


def plan_rows(plans: list[dict[str, Any]], fmt: str) -> list[dict[str, Any]]:
    """JSON keeps the pricing object; CSV the price in minor units (or the pricing as JSON
    for tiered and volume plans); the table a price for people."""
    if fmt == "json":
        return plans
    out = []
    for plan in plans:
        row = dict(plan)
        pricing = row.pop("pricing")
        row["model"] = pricing["model"]
        if pricing.get("tiers"):
            tiers = f"{len(pricing['tiers'])} tiers"
            row["price"] = tiers if fmt == "table" else to_json(pricing, indent=None)
        else:
            row["price"] = pricing["amount"]
        features = row["features"]
        row["features"] = ",".join(features) if fmt == "table" else to_json(features, indent=None)
        out.append(row)
    return out


def cohort_rows(cohorts: list[dict[str, Any]], fmt: str) -> list[dict[str, Any]]:
    """Retention as ratios (0-1) for machines, as percents in the table."""
    if fmt == "json":
        return cohorts
    return [
        {
            "cohort": r["cohort"],
            "customers": r["customers"],
            **{f"m{i}": v if fmt == "csv" else f"{v:.0%}" for i, v in enumerate(r["retention"])},
        }
        for r in cohorts
    ]


def revenue_rows(revenue: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row a month per currency, then the window's totals."""
    rows = []
    for currency, figures in revenue.items():
        rows += [
            {"currency": currency, "month": month, **m} for month, m in figures["months"].items()
        ]
        totals = {k: v for k, v in figures.items() if k != "months"}
        rows.append({"currency": currency, "month": "total", **totals})
    return rows


# ---- errors for people ------------------------------------------------------------------------

EX_TEMPFAIL = 75  # sysexits: a temporary failure, try again
_STORE_FILES = ("events.sqlite", "read.sqlite", "keys.sqlite")
_SQLITE_HEADER = b"SQLite format 3\x00"
_PASSWORD_IN_URL = re.compile(r"(://[^/\s:@]*:)[^@\s]*@")
_PG_DOWN = (
    "connection refused",
    "could not connect",
    "could not translate host name",
    "couldn't get a connection",
    "connection to server",
    "server closed the connection",
    "timeout expired",
    "no route to host",
    "network is unreachable",
    "connection timed out",
)


def error_line(message: Any) -> str:
    """Every error the user sees: one line, card numbers masked, no passwords, no controls."""
    text = " ".join(mask_card_numbers(str(message)).split())
    return "error: " + escape(_PASSWORD_IN_URL.sub(r"\1***@", text))


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and what it was raised from (eventsourcing wraps driver errors)."""
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in out and len(out) < 16:
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def _kinds(exc: BaseException) -> set[str]:
    """`module.Class` for every class the exception is: matched without importing drivers."""
    return {f"{k.__module__}.{k.__name__}" for k in type(exc).__mro__}


def _raised_in(exc: BaseException, fragment: str) -> bool:
    """True if a frame of the exception's traceback runs code in a path with `fragment`."""
    tb = exc.__traceback__
    for frame, _ in traceback.walk_tb(tb):
        if fragment in frame.f_code.co_filename.replace(os.sep, "/"):
            return True
    return False


def _not_sqlite(data_dir: Path) -> str | None:
    """The first store file in the data dir that is not an SQLite database."""
    candidates = [data_dir / n for n in _STORE_FILES]
    with contextlib.suppress(OSError):
        candidates += sorted(p for p in data_dir.glob("*.sqlite") if p not in candidates)
    for path in candidates:
        try:
            with path.open("rb") as f:
                head = f.read(100)
        except OSError:
            continue
        if head and not head.startswith(_SQLITE_HEADER):
            return path.name
    return None


def _postgres(config: Any, chain: list[BaseException], message: str) -> str:
    """Which configured PostgreSQL the driver could not use: 'host:port (SETTING)', never
    the URL (it may hold a password)."""
    found: list[tuple[str, int, str]] = []  # host, port, setting
    for setting, attr in (
        ("SUBLEDGER_EVENT_STORE", "event_store"),
        ("SUBLEDGER_READ_DB", "read_db"),
    ):
        url = getattr(config, attr, None)
        if not url:
            continue
        parts = urlsplit(url)
        try:
            port = parts.port or 5432
        except ValueError:
            port = 5432
        missing = re.search(r'database "([^"]*)" does not exist', message)
        if missing and missing.group(1) != unquote(parts.path.lstrip("/")):
            continue  # the server named the database it lacks: not this one
        found.append((parts.hostname or "localhost", port, setting))
    if not found:
        return "its host and port (SUBLEDGER_EVENT_STORE / SUBLEDGER_READ_DB)"
    # psycopg names the server it tried: 'connection to server at "HOST", port PORT failed'
    hit = [f for f in found if f'"{f[0]}"' in message and f"port {f[1]} " in f"{message} "]
    psycopg3 = any(k.startswith(("psycopg.", "psycopg_pool.")) for e in chain for k in _kinds(e))
    if not hit and psycopg3:  # eventsourcing's driver: the event store
        hit = [f for f in found if f[2] == "SUBLEDGER_EVENT_STORE"]
    places: dict[str, list[str]] = {}
    for host, port, setting in hit or found:
        places.setdefault(f"{host}:{port}", []).append(setting)
    return " or ".join(f"{where} ({', '.join(names)})" for where, names in places.items())


def explain(exc: BaseException, config: Any = None) -> tuple[str, int]:
    """An unexpected exception in the user's words (no class names, no errno), and the exit
    status: what is wrong, with which setting, and what to do."""
    chain = _chain(exc)
    texts = " ".join(str(e) for e in chain)
    lowered = texts.lower()
    kinds = set().union(*(_kinds(e) for e in chain))
    data_dir: Path | None = getattr(config, "data_dir", None)
    where = str(data_dir) if data_dir is not None else "the data directory"

    if data_dir is not None and any(
        isinstance(e, FileExistsError | NotADirectoryError) for e in chain
    ):
        if data_dir.exists() and not data_dir.is_dir():
            return f"the data directory {data_dir} is a file; give a directory (--data-dir)", 1
        blocker = next((p for p in data_dir.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            return (
                f"the data directory {data_dir} is inside a file ({blocker}); "
                "give a directory (--data-dir)",
                1,
            )
    if data_dir is not None and any(isinstance(e, PermissionError) for e in chain):
        return (
            f"cannot write in the data directory {data_dir} (permission denied); "
            "give a directory you can write (--data-dir)",
            1,
        )
    if "not a database" in lowered:
        bad = _not_sqlite(data_dir) if data_dir is not None else None
        what = f"{bad} is not" if bad else "a file in it is not"
        return f"{where} is not a subledger store ({what} an SQLite database)", 1
    if "database disk image is malformed" in lowered:
        return (
            f"{where} holds a damaged SQLite database (database disk image is malformed); "
            "restore the data directory from a backup",
            1,
        )
    if "database is locked" in lowered or "database table is locked" in lowered:
        if _raised_in(exc, "/projections/") and not _raised_in(exc, "/eventsourcing/"):
            return (
                f"the read models in {where} are busy (another subledger process is updating "
                "them); try again",
                EX_TEMPFAIL,
            )
        return (
            f"the data directory {where} is busy (another subledger process is writing); "
            "nothing was recorded, try again",
            EX_TEMPFAIL,
        )
    if any(k.startswith("psycopg") and k.endswith(".OperationalError") for k in kinds):
        target = _postgres(config, chain, texts)
        if "does not exist" in lowered:
            return (
                f"PostgreSQL at {target} has no such database; create it, or point the "
                "setting at one that exists",
                1,
            )
        if "authentication failed" in lowered or "no password supplied" in lowered:
            return (
                f"PostgreSQL at {target} refused the login (password authentication failed); "
                "check the user and password in the URL",
                1,
            )
        if any(sign in lowered for sign in _PG_DOWN):
            return (
                f"cannot reach PostgreSQL at {target}; check it is running (ops/services status)",
                1,
            )
    bootstrap = getattr(config, "kafka_bootstrap", None) or "(not set)"
    if "kafka.errors.NoBrokersAvailable" in kinds or "kafka.errors.KafkaConnectionError" in kinds:
        return _kafka_down(bootstrap), 1
    if "kafka.errors.KafkaTimeoutError" in kinds:
        if "bootstrap" in lowered:
            return _kafka_down(bootstrap), 1
        return (
            f"Kafka at {bootstrap} (SUBLEDGER_KAFKA_BOOTSTRAP) did not answer in time "
            f"({_message(exc)}); check it is running (ops/services status)",
            1,
        )
    if any(isinstance(e, OverflowError) for e in chain):
        return (
            "a number is too large to store (the limit is 9223372036854775807)"
            " (SUBLEDGER_DEBUG=1 shows the details)",
            1,
        )
    detail = _message(exc)
    return (
        f"unexpected failure: {detail} (SUBLEDGER_DEBUG=1 shows the details)"
        if detail
        else "unexpected failure (SUBLEDGER_DEBUG=1 shows the details)",
        1,
    )


def _kafka_down(bootstrap: str) -> str:
    return (
        f"cannot reach Kafka at {bootstrap} (SUBLEDGER_KAFKA_BOOTSTRAP); "
        "check it is running (ops/services status)"
    )


def _message(exc: BaseException) -> str:
    """The exception's own words without its class name or errno."""
    if isinstance(exc, OSError) and exc.strerror:
        name = f": {exc.filename}" if exc.filename is not None else ""
        return f"{exc.strerror.lower()}{name}"
    if isinstance(exc, KeyError) and exc.args:
        return f"no entry {exc.args[0]!r}"
    return str(exc).removeprefix(f"{type(exc).__name__}: ")
