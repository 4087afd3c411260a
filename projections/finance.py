"""Finance figures over the read models: revenue recognised and deferred, cohorts by revenue,
upcoming renewals. Every figure keyed by currency, in integer minor units.

Recognition follows `domain.recognition` (README, "Finance figures"): invoice lines net
of tax, and credit note lines negated, each earned ratably over its service period by the
second. Write-offs do not un-recognise revenue: they are bad debt (`report revenue`'s
`written_off`).
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from domain.money import round_half_up
from domain.periods import seconds_between
from domain.pricing import Pricing, price_for
from domain.recognition import Item, credit_period, months
from projections.base import parse_ts, ts
from projections.db import ReadDB
from projections.reports import month_keys
from projections.statuses import PAYING, marks

TAX = "tax"


def items(db: ReadDB, until: datetime | None = None) -> list[tuple[str, str, Item]]:
    """(currency, invoice number, item) for every recognisable line issued before `until`:
    invoice lines but tax, and credit note lines but tax (negated, on the credited invoice)."""
    limit = ts(until) if until else "9999-12-31T23:59:59Z"
    out: list[tuple[str, str, Item]] = []
    for row in db.query(
        "SELECT i.currency, i.number, i.issued_at, i.period_start AS i_start,"
        " i.period_end AS i_end, l.amount, l.period_start, l.period_end"
        " FROM invoice_lines l JOIN invoices i ON i.number = l.number"
        " WHERE l.kind <> ? AND i.issued_at < ? ORDER BY i.number, l.line_no",
        (TAX, limit),
    ):
        own = row["period_start"] is not None and row["period_end"] is not None
        start = row["period_start"] if own else row["i_start"]
        end = row["period_end"] if own else row["i_end"]
        item = Item(int(row["amount"]), parse_ts(start), parse_ts(end), parse_ts(row["issued_at"]))
        out.append((row["currency"], row["number"], item))
    for row in db.query(
        "SELECT n.currency, n.invoice_number, n.issued_at, i.period_start, i.period_end,"
        " l.amount FROM credit_note_lines l JOIN credit_notes n ON n.number = l.number"
        " JOIN invoices i ON i.number = n.invoice_number"
        " WHERE l.kind <> ? AND n.issued_at < ? ORDER BY n.number, l.line_no",
        (TAX, limit),
    ):
        doc = parse_ts(row["issued_at"])
        start, end = credit_period(doc, parse_ts(row["period_start"]), parse_ts(row["period_end"]))
        out.append(
            (row["currency"], row["invoice_number"], Item(-int(row["amount"]), start, end, doc))
        )
    return out


def recognition(db: ReadDB, start: datetime, end: datetime) -> dict[str, dict[str, Any]]:
    """Per currency: revenue recognised in [start, end), by UTC month (the window's part of
    each), and the deferred balance at `end`."""
    window = months(start, end)
    starts = [a for _, a, _ in window]
    out: dict[str, dict[str, Any]] = {}
    for currency, _, item in items(db, end):
        figures = out.setdefault(
            currency,
            {
                "recognised": 0,
                "deferred_at_end": 0,
                "months": {key: {"recognised": 0} for key, _, _ in window},
            },
        )
        at_end = item.cumulative(end)
        figures["recognised"] += at_end - item.cumulative(start)
        figures["deferred_at_end"] += item.amount - at_end
        if item.doc_time >= end or at_end == item.cumulative(start):
            continue  # nothing recognised in the window (every month's share is 0)
        # only the months from the first instant it may earn (S or D) to its last (E or D)
        first = bisect_right(starts, min(item.start, item.doc_time)) - 1
        last = bisect_right(starts, max(item.end, item.doc_time, item.start))
        for key, a, b in window[max(first, 0) : last]:
            figures["months"][key]["recognised"] += item.cumulative(b) - item.cumulative(a)
    return dict(sorted(out.items()))


def deferred(db: ReadDB, at: datetime) -> dict[str, dict[str, int]]:
    """Per currency at instant `at` (before anything dated `at`, as a window ending there):
    billed net of tax and credit notes, recognised, deferred
    (billed_net = recognised + deferred)."""
    out: dict[str, dict[str, int]] = {}
    for currency, _, item in items(db, at):
        figures = out.setdefault(currency, {"billed_net": 0, "recognised": 0, "deferred": 0})
        done = item.cumulative(at)
        figures["billed_net"] += item.amount
        figures["recognised"] += done
        figures["deferred"] += item.amount - done
    return dict(sorted(out.items()))


def deferred_invoices(db: ReadDB, at: datetime) -> list[dict[str, Any]]:
    """The invoices with revenue still deferred at `at` (their credit notes netted in)."""
    by_invoice: dict[str, dict[str, Any]] = {}
    for currency, number, item in items(db, at):
        row = by_invoice.setdefault(
            number,
            {"number": number, "currency": currency, "billed_net": 0, "recognised": 0},
        )
        row["billed_net"] += item.amount
        row["recognised"] += item.cumulative(at)
    owners = {
        r["number"]: r
        for r in db.query(
            "SELECT number, customer_id, issued_at, period_start, period_end FROM invoices"
            " WHERE issued_at < ?",
            (ts(at),),
        )
    }
    out = []
    for number, row in sorted(by_invoice.items()):
        row["deferred"] = row["billed_net"] - row["recognised"]
        if row["deferred"]:
            owner = owners[number]
            out.append(
                {
                    "number": number,
                    "customer_id": owner["customer_id"],
                    "currency": row["currency"],
                    "issued_at": owner["issued_at"],
                    "period_start": owner["period_start"],
                    "period_end": owner["period_end"],
                    "billed_net": row["billed_net"],
                    "recognised": row["recognised"],
                    "deferred": row["deferred"],
                }
            )
    return out


def cohorts_by_revenue(db: ReadDB, until: datetime | None = None) -> list[dict[str, Any]]:
    """Net revenue retention by the month a customer first paid (in that currency): the
    cohort's MRR at that month's end, then its members' MRR at each month end over it."""
    rows = db.query(
        "SELECT customer_id, currency, at, mrr_after FROM mrr_movements ORDER BY at, event_id"
    )
    if not rows:
        return []
    last = ts(until)[:7] if until else rows[-1]["at"][:7]  # type: ignore[index]
    first_paid: dict[tuple[str, str], str] = {}
    timeline: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
    for row in rows:
        key = (row["customer_id"], row["currency"])
        timeline[key].append((row["at"], int(row["mrr_after"])))
        if int(row["mrr_after"]) > 0:
            first_paid.setdefault(key, row["at"][:7])
    by_cohort: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for key, month in first_paid.items():
        by_cohort[(month, key[1])].append(key)
    out = []
    for cohort, currency in sorted(by_cohort):
        members = by_cohort[(cohort, currency)]
        keys = month_keys(cohort, last)
        totals = [sum(_mrr_at(timeline[m], f"{month}-99") for m in members) for month in keys]
        starting = totals[0] if totals else 0
        out.append(
            {
                "cohort": cohort,
                "currency": currency,
                "customers": len(members),
                "mrr": starting,
                "retention": [round(t / starting, 4) if starting else None for t in totals],
            }
        )
    return out


def _mrr_at(timeline: list[tuple[str, int]], until: str) -> int:
    """The customer's MRR after their last movement at or before `until` (text compare:
    'YYYY-MM-99' sorts after every time in that month)."""
    value = 0
    for at, after in timeline:
        if at > until:
            break
        value = after
    return value


def renewals(
    db: ReadDB,
    at: datetime,
    within: timedelta,
    price: Callable[[dict[str, Any]], int | None] | None = None,
) -> list[dict[str, Any]]:
    """Paying subscriptions, not cancelling at period end, that renew in [at, at + within],
    soonest first, with the next recurring invoice's amount before tax.

    `price(row)` gives that amount from the ledger (the CLI's: the renewed price version
    and the coupon, `domain.subscription.schedule.renewal_amount`); without it, or when it
    gives None, the read model's: the plan's current price for the quantity, before coupons.
    """
    rows = db.query(
        "SELECT s.subscription_id, s.customer_id, s.plan_id, s.currency, s.quantity,"
        " s.current_period_end AS renews_at, p.pricing FROM subscriptions s"
        " JOIN plans p ON p.plan_id = s.plan_id"
        f" WHERE s.status IN ({marks(PAYING)}) AND s.cancel_at_period_end = 0"
        " AND s.current_period_end >= ? AND s.current_period_end <= ?"
        " ORDER BY s.current_period_end, s.subscription_id",
        (*PAYING, ts(at), ts(at + within)),
    )
    out = []
    for row in rows:
        pricing = Pricing.from_dict(json.loads(row.pop("pricing")))
        amount = price(row) if price else None
        row["amount"] = price_for(pricing, int(row["quantity"])) if amount is None else amount
        out.append(row)
    return out


def ledger_pricer(ledger: Any) -> Callable[[dict[str, Any]], int | None]:
    """`renewals`' `price` from the ledger's aggregates: the subscription and its plan,
    priced as `renew` and `recurring_lines` will (`schedule.renewal_amount`)."""
    from domain.catalog.plan import Plan
    from domain.identity import plan_uuid, subscription_uuid
    from domain.subscription.aggregate import Subscription
    from domain.subscription.schedule import renewal_amount

    def price(row: dict[str, Any]) -> int | None:
        sub = ledger.get(Subscription, subscription_uuid(row["subscription_id"]))
        plan = ledger.get(Plan, plan_uuid(row["plan_id"]))
        return renewal_amount(sub, plan) if sub and plan else None

    return price


def renewal_totals(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per currency: how many renewals, and their amount."""
    out: dict[str, dict[str, int]] = {}
    for row in rows:
        figures = out.setdefault(row["currency"], {"renewals": 0, "amount": 0})
        figures["renewals"] += 1
        figures["amount"] += row["amount"]
    return dict(sorted(out.items()))


MONTH_SECONDS = 2_629_746  # 30.436875 days: the mean Gregorian month (365.2425 / 12)


def ltv(arpu: int, lost_mrr: int, mrr_at_start: int, start: datetime, end: datetime) -> int | None:
    """ARPU / monthly revenue churn rate, in minor units (round half up), or None when that
    rate is 0 or unknown. The window's rate (lost / MRR at start) is normalised to a month
    linearly (x 30.436875 days / the window's length), all in exact integer arithmetic."""
    if lost_mrr <= 0 or mrr_at_start <= 0:
        return None
    window = seconds_between(start, end)
    return round_half_up(arpu * mrr_at_start * window, lost_mrr * MONTH_SECONDS)
