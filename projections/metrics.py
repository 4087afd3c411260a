"""Metrics read model: MRR movements per customer as ChartMogul defines them.

Everything is stored as additive changes with their effective time, so any figure "as of
T" is a sum over the rows up to T: MRR, paying customers, active subscribers.
"""

from __future__ import annotations

from projections.base import KeptRows, LastValues, Projection, ts
from projections.db import ReadDB
from projections.statuses import PAYING, TRIALING, UNSEEN
from schemas.records import EventRecord

# One customer's MRR change, named as ChartMogul names it, from the customer's MRR before
# and after it: from nothing, "new" (or "reactivation" if they paid before); to nothing,
# "churn"; else "expansion" or "contraction". Worked out by the INSERT itself, from the
# customer's row, so a move costs no read (`MetricsProjection._move`).
KIND = (
    "CASE WHEN c.mrr = 0 THEN (CASE WHEN c.ever > 0 THEN 'reactivation' ELSE 'new' END)"
    " WHEN c.mrr + ? = 0 THEN 'churn' WHEN CAST(? AS BIGINT) > 0 THEN 'expansion'"
    " ELSE 'contraction' END"
)


class MetricsProjection(Projection):
    name = "metrics"

    def __init__(self) -> None:
        self._rows = KeptRows()  # each subscription's row, after the last event applied
        # in a batch, each subscription's MRR, status and plan as its last event leaves them
        # (`_row` writes them before it reads the row back)
        self._last = LastValues(
            "WITH v (aggregate_id, mrr, status, plan_id) AS (VALUES {rows})"
            " UPDATE metrics_subscriptions SET mrr = CAST(v.mrr AS BIGINT), status = v.status,"
            " plan_id = COALESCE(v.plan_id, metrics_subscriptions.plan_id)"
            " FROM v WHERE metrics_subscriptions.aggregate_id = v.aggregate_id",
            4,
        )

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

    # Every Subscription event carries the status and MRR after it, so each one is followed;
    # test_projection_handlers checks that none is left out.

    def on_Subscription_Subscribed(self, db: ReadDB, r: EventRecord) -> None:
        d = r.data
        row = {key: d[key] for key in ("subscription_id", "customer_id", "currency")}
        self._rows.keep(r.aggregate_id, r.version - 1, {**row, "mrr": 0, "status": UNSEEN})
        db.execute(
            "INSERT INTO metrics_subscriptions (aggregate_id, subscription_id, customer_id,"
            " currency, plan_id, mrr, status, started_at, trial_started_at)"
            " VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)",
            (
                r.aggregate_id,
                d["subscription_id"],
                d["customer_id"],
                d["currency"],
                d["plan_id"],
                UNSEEN,
                ts(r.at),
                ts(r.at) if d["status"] == TRIALING else None,
            ),
        )
        self._follow(db, r)

    def on_Subscription_PlanChanged(self, db: ReadDB, r: EventRecord) -> None:
        self._follow(db, r, plan_id=r.data["plan_id"])

    def _follow(self, db: ReadDB, r: EventRecord, plan_id: str | None = None) -> None:
        """Record what the event moved: MRR, paying or not, a trial's end."""
        sub = self._row(db, r)
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
        held = self._last.get(r.aggregate_id)
        if plan_id is None and held is not None:
            plan_id = held[3]  # a plan change earlier in the batch
        self._last.set(self, db, r.aggregate_id, (r.aggregate_id, new_mrr, new_status, plan_id))
        if sub["status"] == TRIALING and new_status != TRIALING:
            db.execute(
                "UPDATE metrics_subscriptions SET trial_ended_at = ?, trial_converted = ?"
                " WHERE aggregate_id = ?",
                (ts(r.at), 1 if paying_after else 0, r.aggregate_id),
            )
        self._rows.keep(r.aggregate_id, r.version, {**sub, "mrr": new_mrr, "status": new_status})

    def _row(self, db: ReadDB, r: EventRecord) -> dict:
        """The subscription's row as the event finds it: kept from the event before it
        (`KeptRows`), else read."""
        kept = self._rows.at(r.aggregate_id, r.version - 1)
        if kept is not None:
            return kept
        if self._last.get(r.aggregate_id) is not None:
            self._last.flush(db)  # the row as the events before this one left it
        (sub,) = db.query(
            "SELECT subscription_id, customer_id, currency, mrr, status FROM"
            " metrics_subscriptions WHERE aggregate_id = ?",
            (r.aggregate_id,),
        )
        return sub

    def create(self, db: ReadDB) -> None:
        self._rows.clear()  # a new or rebuilt read DB
        super().create(db)

    # the other events change nothing here but the status and MRR they carry
    on_Subscription_CancellationScheduled = _follow
    on_Subscription_Churned = _follow
    on_Subscription_Invoiced = _follow
    on_Subscription_Paused = _follow
    on_Subscription_PaymentFailed = _follow
    on_Subscription_PaymentSucceeded = _follow
    on_Subscription_QuantityChanged = _follow
    on_Subscription_Reactivated = _follow
    on_Subscription_RenewalReminderIssued = _follow
    on_Subscription_Renewed = _follow
    on_Subscription_Resumed = _follow
    on_Subscription_TrialConverted = _follow
    on_Subscription_ChargeRequested = _follow  # a charge asked, no MRR
    # credit notes and refunds move no MRR, but follow like the rest
    on_Subscription_CreditNoteIssued = _follow
    on_Subscription_RefundRequested = _follow
    on_Subscription_RefundSucceeded = _follow
    on_Subscription_RefundFailed = _follow
    on_Subscription_CreditMovedToCustomer = _follow
    on_Subscription_TrialEndingSoon = _follow  # a notice, no MRR

    def _move(self, db: ReadDB, r: EventRecord, sub: dict, new_mrr: int) -> None:
        """The customer's MRR moves by what the subscription's did: a movement from the
        customer's row as it stands (none yet: 0, never paying), then the row moved on."""
        delta, at = new_mrr - sub["mrr"], ts(r.at)
        customer, currency = sub["customer_id"], sub["currency"]
        db.execute(
            "INSERT INTO mrr_movements (event_id, customer_id, subscription_id, currency,"
            f" at, kind, delta, mrr_before, mrr_after) SELECT ?, ?, ?, ?, ?, {KIND}, ?,"
            " c.mrr, c.mrr + ? FROM (SELECT COALESCE(MAX(mrr), 0) AS mrr,"
            " COUNT(first_active_at) AS ever FROM metrics_customers"
            " WHERE customer_id = ? AND currency = ?) AS c",
            (
                r.event_id,
                customer,
                sub["subscription_id"],
                currency,
                at,
                *[delta] * 4,
                customer,
                currency,
            ),
        )
        db.execute(
            "INSERT INTO metrics_customers (customer_id, currency, mrr, first_active_at)"
            " VALUES (?, ?, ?, CASE WHEN CAST(? AS BIGINT) > 0 THEN ? END)"
            " ON CONFLICT (customer_id, currency) DO UPDATE SET"
            " mrr = metrics_customers.mrr + ?,"
            " first_active_at = COALESCE(metrics_customers.first_active_at,"
            "  CASE WHEN metrics_customers.mrr + ? > 0 THEN ? END)",
            (customer, currency, delta, delta, at, delta, delta, at),
        )
