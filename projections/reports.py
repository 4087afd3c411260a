"""Analysts' reports over the read models; every figure keyed by currency."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from domain.money import round_half_up
from projections.base import ts
from projections.db import ReadDB
from projections.statuses import OPEN, PAYING, SUCCEEDED, UNCOLLECTIBLE, marks

KINDS = ("new", "expansion", "contraction", "churn", "reactivation")


def where(filters: Iterable[tuple[str, Any]], alias: str = "") -> tuple[str, list[Any]]:
    """` WHERE a = ? AND b <= ?` and its parameters, from (column, value) pairs.

    A pair whose value is None or "" filters nothing (an option left out); a column may
    end in its operator (`"current_period_end <="`, default `=`) and a tuple value means
    `IN (...)`. `alias` qualifies every column, for queries that join.
    """
    prefix = f"{alias}." if alias else ""
    parts: list[str] = []
    params: list[Any] = []
    for column, value in filters:
        if value is None or value == "":
            continue
        name, _, op = column.partition(" ")
        if isinstance(value, tuple):
            parts.append(f"{prefix}{name} IN ({marks(value)})")
            params.extend(value)
        else:
            parts.append(f"{prefix}{name} {op or '='} ?")
            params.append(value)
    return (f" WHERE {' AND '.join(parts)}" if parts else ""), params


def _rate(numerator: int, denominator: int) -> float | None:
    """Ratios are the one place a float is right: they are not money."""
    return round(numerator / denominator, 6) if denominator else None


def mrr(db: ReadDB, at: datetime | None = None) -> dict[str, dict[str, Any]]:
    until = ts(at) if at else "9999-12-31T23:59:59Z"
    out: dict[str, dict[str, Any]] = {}
    for row in db.query(
        "SELECT currency, SUM(delta) AS mrr,"
        " SUM(CASE WHEN mrr_after > 0 THEN 1 ELSE 0 END)"
        "  - SUM(CASE WHEN mrr_before > 0 THEN 1 ELSE 0 END) AS customers"
        " FROM mrr_movements WHERE at <= ? GROUP BY currency ORDER BY currency",
        (until,),
    ):
        total, customers = int(row["mrr"]), int(row["customers"])
        out[row["currency"]] = {
            "mrr": total,
            "arr": 12 * total,
            "paying_customers": customers,
            "arpu": round_half_up(total, customers) if customers else 0,
        }
    for row in db.query(
        "SELECT currency, SUM(change) AS subs FROM subscriber_changes WHERE at <= ?"
        " GROUP BY currency",
        (until,),
    ):
        out.setdefault(row["currency"], {"mrr": 0, "arr": 0, "paying_customers": 0, "arpu": 0})[
            "active_subscriptions"
        ] = int(row["subs"])
    for figures in out.values():
        figures.setdefault("active_subscriptions", 0)
    return out


def movements(db: ReadDB, start: datetime, end: datetime) -> dict[str, dict[str, int]]:
    """MRR moved in [start, end) by kind, the net, and how many customers moved each way."""
    amounts: dict[str, dict[str, int]] = {}
    customers: dict[str, dict[str, int]] = {}
    for row in db.query(
        "SELECT currency, kind, SUM(delta) AS amount, COUNT(DISTINCT customer_id) AS n"
        " FROM mrr_movements WHERE at >= ? AND at < ? GROUP BY currency, kind",
        (ts(start), ts(end)),
    ):
        amounts.setdefault(row["currency"], {})[row["kind"]] = int(row["amount"])
        customers.setdefault(row["currency"], {})[row["kind"]] = int(row["n"])
    out: dict[str, dict[str, int]] = {}
    for currency in sorted(amounts):
        figures = {k: amounts[currency].get(k, 0) for k in KINDS}
        figures["net"] = sum(figures.values())
        figures.update({f"{k}_customers": customers[currency].get(k, 0) for k in KINDS})
        out[currency] = figures
    return out


def churned_customers(db: ReadDB, start: datetime, end: datetime) -> dict[str, dict[str, int]]:
    """Distinct customers who churned in [start, end): those paying at `start`, and the rest
    (who started paying inside the window, then left)."""
    out: dict[str, dict[str, int]] = {}
    for row in db.query(
        "SELECT m.currency,"
        " CASE WHEN COALESCE((SELECT SUM(p.delta) FROM mrr_movements p"
        "  WHERE p.customer_id = m.customer_id AND p.currency = m.currency AND p.at < ?), 0) > 0"
        "  THEN 1 ELSE 0 END AS paying_at_start, COUNT(DISTINCT m.customer_id) AS n"
        " FROM mrr_movements m WHERE m.kind = 'churn' AND m.at >= ? AND m.at < ?"
        " GROUP BY m.currency, 2",
        (ts(start), ts(start), ts(end)),
    ):
        figures = out.setdefault(row["currency"], {"from_start": 0, "new_in_window": 0})
        figures["from_start" if row["paying_at_start"] else "new_in_window"] = int(row["n"])
    return out


def churn(db: ReadDB, start: datetime, end: datetime) -> dict[str, dict[str, Any]]:
    """Logo churn counts the customers paying at `start` who left (so it stays within 0-1);
    revenue churn, as ChartMogul has it, all churned and contracted MRR over MRR at start.
    ARPU is `mrr` at `end`'s; LTV is ARPU over the revenue churn rate made monthly
    (`finance.ltv`)."""
    from projections.finance import ltv

    at_start = mrr(db, _just_before(start))
    at_end = mrr(db, end)
    moved = movements(db, start, end)
    left = churned_customers(db, start, end)
    out: dict[str, dict[str, Any]] = {}
    for currency in sorted(set(at_start) | set(moved)):
        base = at_start.get(currency, {"mrr": 0, "paying_customers": 0})
        m = moved.get(currency, {k: 0 for k in KINDS} | {"churn_customers": 0})
        gone = left.get(currency, {"from_start": 0, "new_in_window": 0})
        lost = -m["churn"] - m["contraction"]
        out[currency] = {
            "customers_at_start": base["paying_customers"],
            "customers_churned": gone["from_start"],
            "new_customers_churned": gone["new_in_window"],
            "logo_churn_rate": _rate(gone["from_start"], base["paying_customers"]),
            "mrr_at_start": base["mrr"],
            "churned_mrr": -m["churn"],
            "contraction_mrr": -m["contraction"],
            "expansion_mrr": m["expansion"],
            "reactivation_mrr": m["reactivation"],
            "revenue_churn_rate": _rate(lost, base["mrr"]),
            "net_revenue_churn_rate": _rate(lost - m["expansion"] - m["reactivation"], base["mrr"]),
            "arpu": at_end.get(currency, {}).get("arpu", 0),
        }
        out[currency]["ltv"] = ltv(out[currency]["arpu"], lost, base["mrr"], start, end)
    trials = db.query(
        "SELECT s.currency, COUNT(*) AS ended, SUM(trial_converted) AS converted"
        " FROM metrics_subscriptions s WHERE trial_ended_at >= ? AND trial_ended_at < ?"
        " GROUP BY s.currency",
        (ts(start), ts(end)),
    )
    for row in trials:
        figures = out.setdefault(row["currency"], {})
        figures["trials_ended"] = int(row["ended"])
        figures["trials_converted"] = int(row["converted"] or 0)
        figures["trial_conversion_rate"] = _rate(int(row["converted"] or 0), int(row["ended"]))
    return out


def _just_before(at: datetime) -> datetime:
    return at - timedelta(seconds=1)


def _month(text: str) -> str:
    return text[:7]


def month_keys(first: str, last: str) -> list[str]:
    """Month keys from `first` to `last` inclusive ('2024-01')."""
    year, month = int(first[:4]), int(first[5:7])
    out = []
    while f"{year:04d}-{month:02d}" <= last:
        out.append(f"{year:04d}-{month:02d}")
        month += 1
        if month == 13:
            year, month = year + 1, 1
    return out


def cohorts(db: ReadDB, until: datetime | None = None) -> list[dict[str, Any]]:
    """Logo retention by the month a customer first paid: share still paying at each month end."""
    rows = db.query("SELECT customer_id, at, mrr_after FROM mrr_movements ORDER BY at")
    if not rows:
        return []
    last = _month(ts(until)) if until else _month(rows[-1]["at"])
    first_paid: dict[str, str] = {}
    timeline: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for row in rows:
        timeline[row["customer_id"]].append((row["at"], int(row["mrr_after"])))
        if int(row["mrr_after"]) > 0:
            first_paid.setdefault(row["customer_id"], _month(row["at"]))
    by_cohort: dict[str, list[str]] = defaultdict(list)
    for customer, month in first_paid.items():
        by_cohort[month].append(customer)
    out = []
    for cohort in sorted(by_cohort):
        members = by_cohort[cohort]
        retention = []
        for month in month_keys(cohort, last):
            end = f"{month}-99"  # sorts after every time in that month
            paying = sum(1 for c in members if _paying_at(timeline[c], end))
            retention.append(round(paying / len(members), 4))
        out.append({"cohort": cohort, "customers": len(members), "retention": retention})
    return out


def _paying_at(timeline: list[tuple[str, int]], until: str) -> bool:
    value = 0
    for at, after in timeline:
        if at > until:
            break
        value = after
    return value > 0


def revenue(db: ReadDB, start: datetime, end: datetime) -> dict[str, dict[str, Any]]:
    """Billed, tax, collected by month; revenue recognised (`finance.recognition`) by month
    and deferred at `end`; written off is bad debt apart, which does not un-recognise."""
    from projections import finance

    out: dict[str, dict[str, Any]] = {}

    def figures_for(currency: str) -> dict[str, Any]:
        empty = {"billed": 0, "tax": 0, "collected": 0, "written_off": 0, "months": {}}
        return out.setdefault(currency, empty)

    def row_for(currency: str, month: str) -> dict[str, Any]:
        months = figures_for(currency)["months"]
        return months.setdefault(month, {"billed": 0, "tax": 0, "collected": 0, "recognised": 0})

    for row in db.query(
        "SELECT currency, substr(issued_at, 1, 7) AS month, SUM(total) AS billed,"
        " SUM(tax) AS tax FROM invoices WHERE issued_at >= ? AND issued_at < ?"
        " GROUP BY currency, substr(issued_at, 1, 7)",
        (ts(start), ts(end)),
    ):
        month = row_for(row["currency"], row["month"])
        month["billed"], month["tax"] = int(row["billed"]), int(row["tax"])
    for row in db.query(
        "SELECT currency, substr(at, 1, 7) AS month, SUM(amount) AS collected FROM payments"
        " WHERE outcome = ? AND at >= ? AND at < ?"
        " GROUP BY currency, substr(at, 1, 7)",
        (SUCCEEDED, ts(start), ts(end)),
    ):
        row_for(row["currency"], row["month"])["collected"] = int(row["collected"])
    for row in db.query(
        "SELECT currency, SUM(amount_due - amount_paid) AS lost FROM invoices"
        " WHERE status = ? AND issued_at >= ? AND issued_at < ?"
        " GROUP BY currency",
        (UNCOLLECTIBLE, ts(start), ts(end)),
    ):
        figures_for(row["currency"])["written_off"] = int(row["lost"])
    for currency, earned in finance.recognition(db, start, end).items():
        figures = figures_for(currency)
        figures["recognised"], figures["deferred_at_end"] = (
            earned["recognised"],
            earned["deferred_at_end"],
        )
        for month, m in earned["months"].items():
            if m["recognised"] or month in figures["months"]:
                row_for(currency, month)["recognised"] = m["recognised"]
    for figures in out.values():
        figures["months"] = dict(sorted(figures["months"].items()))
        for key in ("billed", "tax", "collected"):
            figures[key] = sum(m[key] for m in figures["months"].values())
    outstanding = db.query(
        "SELECT currency, SUM(amount_due - amount_paid) AS open FROM invoices"
        " WHERE status = ? GROUP BY currency",
        (OPEN,),
    )
    for row in outstanding:
        figures_for(row["currency"])["outstanding"] = int(row["open"])
    for figures in out.values():
        for key in ("outstanding", "recognised", "deferred_at_end"):
            figures.setdefault(key, 0)
    return out


def invoices(
    db: ReadDB,
    customer: str | None = None,
    subscription: str | None = None,
    status: str | None = None,
) -> list[dict[str, Any]]:
    filters = (("customer_id", customer), ("subscription_id", subscription), ("status", status))
    clause, params = where(filters)
    rows = db.query(
        "SELECT number, subscription_id, customer_id, currency, reason, issued_at,"
        " period_start, period_end, subtotal, tax, total, credit_applied, amount_due,"
        f" amount_paid, status, attempts FROM invoices{clause} ORDER BY number",
        params,
    )
    lines: dict[str, list[dict[str, Any]]] = defaultdict(list)
    joined, params = where(filters, alias="i")
    for line in db.query(
        "SELECT l.number, l.kind, l.description, l.amount, l.period_start, l.period_end"
        f" FROM invoice_lines l JOIN invoices i ON i.number = l.number{joined}"
        " ORDER BY l.number, l.line_no",
        params,
    ):
        lines[line.pop("number")].append(line)
    for row in rows:
        row["lines"] = lines.get(row["number"], [])
    return rows


def payments(
    db: ReadDB,
    customer: str | None = None,
    subscription: str | None = None,
    outcome: str | None = None,
) -> list[dict[str, Any]]:
    """Every charge attempt (and payment recorded outside the gateway), oldest first."""
    clause, params = where(
        (("customer_id", customer), ("subscription_id", subscription), ("outcome", outcome))
    )
    return db.query(
        "SELECT at, number, subscription_id, customer_id, currency, amount, outcome, attempt,"
        f" reason, reference FROM payments{clause} ORDER BY at, number, attempt",
        params,
    )


def subscription(db: ReadDB, subscription_id: str) -> dict[str, Any] | None:
    rows = db.query(
        "SELECT subscription_id, customer_id, plan_id, plan_version, status, quantity,"
        " currency, mrr, current_period_start, current_period_end, trial_end,"
        " cancel_at_period_end, canceled_at, churn_kind, churn_reason, credit_balance,"
        " next_retry_at, created_at FROM subscriptions WHERE subscription_id = ?",
        (subscription_id,),
    )
    if not rows:
        return None
    row = rows[0]
    row["cancel_at_period_end"] = bool(row["cancel_at_period_end"])
    row["open_invoices"] = [
        r["number"]
        for r in db.query(
            "SELECT number FROM invoices WHERE subscription_id = ? AND status = ? ORDER BY number",
            (subscription_id, OPEN),
        )
    ]
    return row


def subscriptions(
    db: ReadDB,
    customer: str | None = None,
    status: str | None = None,
    renewing_before: datetime | None = None,
) -> list[dict[str, Any]]:
    filters = [("customer_id", customer), ("status", status)]
    if renewing_before:  # billed again by then: paying, and not cancelling at period end
        filters += [
            ("status", PAYING),
            ("cancel_at_period_end", 0),
            ("current_period_end <=", ts(renewing_before)),
        ]
    clause, params = where(filters)
    return db.query(
        "SELECT subscription_id, customer_id, plan_id, status, quantity, currency, mrr,"
        " current_period_end, cancel_at_period_end FROM subscriptions"
        f"{clause} ORDER BY current_period_end, subscription_id",
        params,
    )


def plans(db: ReadDB) -> list[dict[str, Any]]:
    rows = db.query(
        "SELECT plan_id, name, currency, pricing, interval_unit, interval_count, trial_days,"
        " features, price_version, retired FROM plans ORDER BY plan_id"
    )
    for row in rows:
        row["pricing"] = json.loads(row["pricing"])
        row["features"] = json.loads(row["features"])
        row["retired"] = bool(row["retired"])
    return rows


def balance(db: ReadDB, customer_id: str) -> dict[str, dict[str, int]]:
    """Per currency: what the customer owes on open invoices, and their credit balance.

    Credit is the customer's (`customer_credit`), plus any an earlier version left on a
    subscription (`subscriptions.credit_balance`) not yet moved to them: the ledger moves
    it before the first invoice that could spend it, and the column is 0 from then on.
    """
    out: dict[str, dict[str, int]] = {}
    for row in db.query(
        "SELECT currency, SUM(amount_due - amount_paid) AS due FROM invoices"
        " WHERE customer_id = ? AND status = ? GROUP BY currency",
        (customer_id, OPEN),
    ):
        out.setdefault(row["currency"], {})["outstanding"] = int(row["due"])
    for row in db.query(
        "SELECT currency, SUM(credit) AS credit FROM ("
        " SELECT currency, balance AS credit FROM customer_credit WHERE customer_id = ?"
        " UNION ALL SELECT currency, credit_balance AS credit FROM subscriptions"
        " WHERE customer_id = ?) AS held GROUP BY currency",
        (customer_id, customer_id),
    ):
        out.setdefault(row["currency"], {})["credit"] = int(row["credit"])
    for figures in out.values():
        figures.setdefault("outstanding", 0)
        figures.setdefault("credit", 0)
    return out


def credit_notes(
    db: ReadDB, customer: str | None = None, invoice: str | None = None
) -> list[dict[str, Any]]:
    """Credit notes, oldest first, with their lines and where their refund stands."""
    filters = (("customer_id", customer), ("invoice_number", invoice))
    clause, params = where(filters)
    rows = db.query(
        "SELECT number, invoice_number, subscription_id, customer_id, currency, amount,"
        " reason, method, issued_at, refund_status, refund_reference"
        f" FROM credit_notes{clause} ORDER BY number",
        params,
    )
    lines: dict[str, list[dict[str, Any]]] = defaultdict(list)
    joined, params = where(filters, alias="n")
    for line in db.query(
        "SELECT l.number, l.kind, l.description, l.amount FROM credit_note_lines l"
        f" JOIN credit_notes n ON n.number = l.number{joined} ORDER BY l.number, l.line_no",
        params,
    ):
        lines[line.pop("number")].append(line)
    for row in rows:
        row["lines"] = lines.get(row["number"], [])
    return rows


def invoice_owner(db: ReadDB, number: str) -> dict[str, Any] | None:
    """The subscription, customer and currency of invoice `number` (None if unknown)."""
    rows = db.query(
        "SELECT subscription_id, customer_id, currency FROM invoices WHERE number = ?", (number,)
    )
    return rows[0] if rows else None


def customer_credit(db: ReadDB, customer_id: str) -> list[dict[str, Any]]:
    """How the customer's credit moved, oldest first: grants (+) and invoices paid (-)."""
    return db.query(
        "SELECT at, currency, kind, amount, balance_after, source, reason, reference"
        " FROM credit_movements WHERE customer_id = ? ORDER BY at, position, event_id",
        (customer_id,),
    )
