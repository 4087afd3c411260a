"""Metrics read model: MRR movements per customer as ChartMogul defines them.

Everything is stored as additive changes with their effective time, so any figure "as of
T" is a sum over the rows up to T: MRR, paying customers, active subscribers.
"""

from __future__ import annotations

from projections.base import Projection, ts
from projections.db import ReadDB
from schemas.records import EventRecord

PAYING = ("active", "past_due")


def classify(before: int, after: int, was_ever_active: bool) -> str:
    """One customer's MRR change, named as ChartMogul names it."""
    if before == 0:
        return "reactivation" if was_ever_active else "new"
    if after == 0:
        return "churn"
    return "expansion" if after > before else "contraction"


class MetricsProjection(Projection):
    name = "metrics"
    tables = {
        "metrics_subscriptions": """CREATE TABLE IF NOT EXISTS metrics_subscriptions (
            aggregate_id TEXT PRIMARY KEY, subscription_id TEXT NOT NULL,
            customer_id TEXT NOT NULL, currency TEXT NOT NULL, plan_id TEXT NOT NULL,
            mrr BIGINT NOT NULL, status TEXT NOT NULL, started_at TEXT NOT NULL,
            trial_started_at TEXT, trial_ended_at TEXT, trial_converted INTEGER)""",
        "metrics_customers": """CREATE TABLE IF NOT EXISTS metrics_customers (
            customer_id TEXT NOT NULL, currency TEXT NOT NULL, mrr BIGINT NOT NULL,
            first_active_at TEXT, PRIMARY KEY (customer_id, currency))""",
        "mrr_movements": """CREATE TABLE IF NOT EXISTS mrr_movements (
            event_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL,
            subscription_id TEXT NOT NULL, currency TEXT NOT NULL, at TEXT NOT NULL,
            kind TEXT NOT NULL, delta BIGINT NOT NULL, mrr_before BIGINT NOT NULL,
            mrr_after BIGINT NOT NULL)""",
        "subscriber_changes": """CREATE TABLE IF NOT EXISTS subscriber_changes (
            event_id TEXT PRIMARY KEY, subscription_id TEXT NOT NULL,
            customer_id TEXT NOT NULL, currency TEXT NOT NULL, at TEXT NOT NULL,
            change INTEGER NOT NULL)""",
    }

    def apply(self, db: ReadDB, r: EventRecord) -> None:
        if r.aggregate_type != "Subscription":
            return
        if r.type == "Subscribed":
            d = r.data
            db.execute(
                "INSERT INTO metrics_subscriptions (aggregate_id, subscription_id, customer_id,"
                " currency, plan_id, mrr, status, started_at, trial_started_at)"
                " VALUES (?, ?, ?, ?, ?, 0, 'new', ?, ?)",
                (
                    r.aggregate_id,
                    d["subscription_id"],
                    d["customer_id"],
                    d["currency"],
                    d["plan_id"],
                    ts(r.at),
                    ts(r.at) if d["status"] == "trialing" else None,
                ),
            )
        (sub,) = db.query(
            "SELECT subscription_id, customer_id, currency, mrr, status FROM"
            " metrics_subscriptions WHERE aggregate_id = ?",
            (r.aggregate_id,),
        )
        new_mrr, new_status = r.data["mrr"], r.data["status"]
        if new_mrr != sub["mrr"]:
            self._move(db, r, sub, new_mrr)
        paying_before, paying_after = sub["status"] in PAYING, new_status in PAYING
        if paying_before != paying_after:
            db.execute(
                "INSERT INTO subscriber_changes (event_id, subscription_id, customer_id,"
                " currency, at, change) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    r.event_id,
                    sub["subscription_id"],
                    sub["customer_id"],
                    sub["currency"],
                    ts(r.at),
                    1 if paying_after else -1,
                ),
            )
        trial = ""
        if sub["status"] == "trialing" and new_status != "trialing":
            trial = ", trial_ended_at = ?, trial_converted = ?"
        params = (ts(r.at), 1 if new_status in PAYING else 0) if trial else ()
        plan = r.data.get("plan_id") if r.type == "PlanChanged" else None
        db.execute(
            f"UPDATE metrics_subscriptions SET mrr = ?, status = ?,"
            f" plan_id = COALESCE(?, plan_id){trial} WHERE aggregate_id = ?",
            (new_mrr, new_status, plan, *params, r.aggregate_id),
        )

    def _move(self, db: ReadDB, r: EventRecord, sub: dict, new_mrr: int) -> None:
        rows = db.query(
            "SELECT mrr, first_active_at FROM metrics_customers"
            " WHERE customer_id = ? AND currency = ?",
            (sub["customer_id"], sub["currency"]),
        )
        before = rows[0]["mrr"] if rows else 0
        ever = bool(rows and rows[0]["first_active_at"])
        after = before - sub["mrr"] + new_mrr
        if before == after:  # one subscription's loss is another's gain: no movement
            pass
        else:
            db.execute(
                "INSERT INTO mrr_movements (event_id, customer_id, subscription_id, currency,"
                " at, kind, delta, mrr_before, mrr_after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    r.event_id,
                    sub["customer_id"],
                    sub["subscription_id"],
                    sub["currency"],
                    ts(r.at),
                    classify(before, after, ever),
                    after - before,
                    before,
                    after,
                ),
            )
        first = ts(r.at) if after > 0 and not ever else None
        db.execute(
            "INSERT INTO metrics_customers (customer_id, currency, mrr, first_active_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (customer_id, currency) DO UPDATE SET"
            " mrr = excluded.mrr,"
            " first_active_at = COALESCE(metrics_customers.first_active_at,"
            " excluded.first_active_at)",
            (sub["customer_id"], sub["currency"], after, first),
        )
