"""The analysts' contract: SQL views over the read models, documented in docs/analytics.md.

PostgreSQL: views `analytics.<name>` in their own schema; SQLite: views `analytics_<name>`.
The tables under them are internal and change with the code; the views' names and columns
are the stable part (tests/integration/test_analytics.py pins them). Each view is written
once; only date maths and exact integer division differ by dialect (`Dialect`). Times stay
ISO text (UTC), with `_day`/`_month` text beside them, so one query runs on both backends.
"""

from __future__ import annotations

import hashlib
import json

from projections.analytics_sql import POSTGRES, SQLITE, VIEWS
from projections.db import ReadDB

SCHEMA = "analytics"
REQUIRED_TABLES = (
    "customers",
    "plans",
    "subscriptions",
    "invoices",
    "invoice_lines",
    "credit_notes",
    "credit_note_lines",
    "refunds",
    "payments",
    "mrr_movements",
    "subscriber_changes",
    "metrics_customers",
    "metrics_subscriptions",
)
# which version of the views is in place (a digest of their SQL), so a new one replaces it
VERSION_DDL = (
    "CREATE TABLE IF NOT EXISTS read_model_views (contract TEXT PRIMARY KEY, digest TEXT NOT NULL)"
)


RETIRED: tuple[str, ...] = ()  # views an earlier version made: dropped on upgrade


# ---- creating and dropping them ----------------------------------------------------------


def view_name(db: ReadDB, name: str) -> str:
    """`analytics.name` on PostgreSQL, `analytics_name` on SQLite."""
    return f"{SCHEMA}.{name}" if db.kind == "postgres" else f"{SCHEMA}_{name}"


def definitions(db: ReadDB) -> dict[str, str]:
    """Each view's qualified name and SELECT, in this backend's dialect."""
    dialect = POSTGRES if db.kind == "postgres" else SQLITE
    return {view_name(db, name): build(dialect) for name, build in VIEWS.items()}


def _digest(views: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(views, sort_keys=True).encode()).hexdigest()


def _existing(db: ReadDB) -> set[str]:
    """Tables and views by name, PostgreSQL's views schema-qualified."""
    if db.kind == "postgres":
        rows = db.query(
            "SELECT table_name AS name FROM information_schema.tables"
            " WHERE table_schema = current_schema()"
            " UNION SELECT table_schema || '.' || table_name FROM information_schema.views"
            " WHERE table_schema = ?",
            (SCHEMA,),
        )
    else:
        rows = db.query("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
    return {row["name"] for row in rows}


def create_views(db: ReadDB) -> bool:
    """Make the views this version defines, replacing another version's; False (nothing done)
    until every table they read exists. Views already this version's are left alone, so an
    analyst's long query never holds up a process starting."""
    views = definitions(db)
    digest = _digest(views)
    with db.transaction():
        db.serialise("subledger-analytics-views")
        have = _existing(db)
        if not set(REQUIRED_TABLES) <= have:
            return False
        db.execute(VERSION_DDL)
        stored = db.query("SELECT digest FROM read_model_views WHERE contract = ?", (SCHEMA,))
        if stored and stored[0]["digest"] == digest and set(views) <= have:
            return True
        drop_views(db)
        if db.kind == "postgres":
            db.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        for name, select in views.items():
            db.execute(f"CREATE VIEW {name} AS {select}")
        db.execute(
            "INSERT INTO read_model_views (contract, digest) VALUES (?, ?)", (SCHEMA, digest)
        )
    return True


def drop_views(db: ReadDB) -> None:
    """Drop every view (PostgreSQL refuses to drop a table a view reads); `create_views`
    makes them again once the tables are back."""
    cascade = " CASCADE" if db.kind == "postgres" else ""
    with db.transaction():
        for name in (*VIEWS, *RETIRED):
            db.execute(f"DROP VIEW IF EXISTS {view_name(db, name)}{cascade}")
        db.execute(VERSION_DDL)
        db.execute("DELETE FROM read_model_views WHERE contract = ?", (SCHEMA,))
