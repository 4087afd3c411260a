"""Billing read model: plans, subscriptions, invoices with their lines, payments, balances."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from uuid import UUID

from domain.identity import subscription_uuid
from domain.subscription.schedule import ReminderLeads
from projections.base import LastValues, Projection, dumps, ts
from projections.credit import CREDIT_TABLES, CreditModel
from projections.db import ReadDB
from projections.statuses import (
    FAILED,
    LIVE,
    OPEN,
    PAID,
    PAYING,
    SUCCEEDED,
    TRIALING,
    UNCOLLECTIBLE,
    marks,
)
from schemas.records import EventRecord

SUB_CACHE = 100_000  # subscriptions whose id, customer and currency a billing model keeps


class BillingProjection(CreditModel, Projection):
    """Plans, customers, subscriptions, invoices, payments; credit (projections/credit.py)."""

    name = "billing"
    follows = ("Subscription",)  # `apply`: the status and MRR every one of its events carries

    def __init__(self) -> None:
        self._subs: dict[str, dict] = {}
        # in a batch, each subscription's status and MRR as its last event leaves them: no
        # statement of a batch reads them, and its next check is worked out from the row as
        # the batch leaves it (no other aggregate's events touch it)
        self._statuses = LastValues(
            "WITH v (aggregate_id, status, mrr, updated_at, live) AS (VALUES {rows})"
            " UPDATE subscriptions SET status = v.status, mrr = CAST(v.mrr AS BIGINT),"
            " updated_at = v.updated_at, next_check_at = CASE WHEN CAST(v.live AS INTEGER) = 1"
            " THEN CASE WHEN subscriptions.next_retry_at IS NOT NULL"
            " AND subscriptions.next_retry_at < subscriptions.current_period_end"
            " THEN subscriptions.next_retry_at ELSE subscriptions.current_period_end END"
            " ELSE NULL END FROM v WHERE subscriptions.aggregate_id = v.aggregate_id",
            5,
        )
        # invoices' lines and payments: no statement of a batch reads them back
        self._lines = LastValues(
            "INSERT INTO invoice_lines (number, line_no, kind, description, amount,"
            " period_start, period_end) VALUES {rows}",
            7,
        )
        self._payments = LastValues(
            "INSERT INTO payments (event_id, number, subscription_id, customer_id, currency,"
            " amount, at, outcome, attempt, reason, reference, message) VALUES {rows}",
            12,
        )

    tables = {
        "plans": """CREATE TABLE IF NOT EXISTS plans (
            plan_id TEXT PRIMARY KEY, aggregate_id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
            currency TEXT NOT NULL,
            pricing TEXT NOT NULL, interval_unit TEXT NOT NULL, interval_count INTEGER NOT NULL,
            trial_days INTEGER NOT NULL, features TEXT NOT NULL, price_version INTEGER NOT NULL,
            retired INTEGER NOT NULL DEFAULT 0, defined_at TEXT NOT NULL)""",
        "customers": """CREATE TABLE IF NOT EXISTS customers (
            customer_id TEXT PRIMARY KEY, aggregate_id TEXT NOT NULL UNIQUE,
            country TEXT NOT NULL, registered_at TEXT NOT NULL,
            erased INTEGER NOT NULL DEFAULT 0)""",
        "subscriptions": """CREATE TABLE IF NOT EXISTS subscriptions (
            subscription_id TEXT PRIMARY KEY, aggregate_id TEXT NOT NULL UNIQUE,
            customer_id TEXT NOT NULL, plan_id TEXT NOT NULL, plan_version INTEGER NOT NULL,
            status TEXT NOT NULL, quantity INTEGER NOT NULL, currency TEXT NOT NULL,
            mrr BIGINT NOT NULL, current_period_start TEXT NOT NULL,
            current_period_end TEXT NOT NULL, trial_end TEXT,
            cancel_at_period_end INTEGER NOT NULL DEFAULT 0, canceled_at TEXT,
            churn_kind TEXT, churn_reason TEXT, credit_balance BIGINT NOT NULL DEFAULT 0,
            next_retry_at TEXT, next_check_at TEXT, created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL, reminded_for TEXT)""",
        "invoices": """CREATE TABLE IF NOT EXISTS invoices (
            number TEXT PRIMARY KEY, subscription_id TEXT NOT NULL, customer_id TEXT NOT NULL,
            currency TEXT NOT NULL, reason TEXT NOT NULL, issued_at TEXT NOT NULL,
            period_start TEXT NOT NULL, period_end TEXT NOT NULL, subtotal BIGINT NOT NULL,
            tax BIGINT NOT NULL, total BIGINT NOT NULL, credit_applied BIGINT NOT NULL,
            amount_due BIGINT NOT NULL, amount_paid BIGINT NOT NULL DEFAULT 0,
            status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_retry_at TEXT,
            paid_at TEXT, charging INTEGER)""",
        "invoice_lines": """CREATE TABLE IF NOT EXISTS invoice_lines (
            number TEXT NOT NULL, line_no INTEGER NOT NULL, kind TEXT NOT NULL,
            description TEXT NOT NULL, amount BIGINT NOT NULL, period_start TEXT,
            period_end TEXT, PRIMARY KEY (number, line_no))""",
        "payments": """CREATE TABLE IF NOT EXISTS payments (
            event_id TEXT PRIMARY KEY, number TEXT NOT NULL, subscription_id TEXT NOT NULL,
            customer_id TEXT NOT NULL, currency TEXT NOT NULL, amount BIGINT NOT NULL,
            at TEXT NOT NULL, outcome TEXT NOT NULL, attempt INTEGER NOT NULL,
            reason TEXT, reference TEXT, message TEXT)""",
        **CREDIT_TABLES,  # customer_credit, credit_notes, refunds, ...
    }
    indexes = (  # a subscription's next retry is the earliest of its open invoices'
        "CREATE INDEX IF NOT EXISTS invoices_by_subscription ON invoices (subscription_id, status)",
        "CREATE INDEX IF NOT EXISTS subscriptions_by_next_check ON subscriptions (next_check_at)",
    )
    # the schedule's reminder candidates: live, not reminded for this period (made after
    # ADDED_COLUMNS, since an older read DB gets `reminded_for` there)
    SCHEDULE_INDEXES = (
        "CREATE INDEX IF NOT EXISTS subscriptions_unreminded"
        " ON subscriptions (status, plan_id, current_period_end) WHERE next_check_at IS NOT NULL"
        " AND (reminded_for IS NULL OR reminded_for <> current_period_end)",
    )

    # ---- catalog and customers ---------------------------------------------------------

    def on_Plan_Defined(self, db: ReadDB, r: EventRecord) -> None:
        d = r.data
        db.execute(
            "INSERT INTO plans (plan_id, aggregate_id, name, currency, pricing, interval_unit,"
            " interval_count, trial_days, features, price_version, defined_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)",
            (
                d["plan_id"],
                r.aggregate_id,
                d["name"],
                d["currency"],
                dumps(d["pricing"]),
                d["interval"]["unit"],
                d["interval"]["count"],
                d["trial_days"],
                dumps(list(d["features"])),
                ts(r.at),
            ),
        )

    def on_Plan_PriceChanged(self, db: ReadDB, r: EventRecord) -> None:
        db.execute(
            "UPDATE plans SET pricing = ?, price_version = ? WHERE aggregate_id = ?",
            (dumps(r.data["pricing"]), r.data["price_version"], r.aggregate_id),
        )

    def on_Plan_Retired(self, db: ReadDB, r: EventRecord) -> None:
        db.execute("UPDATE plans SET retired = 1 WHERE aggregate_id = ?", (r.aggregate_id,))

    def on_Customer_Registered(self, db: ReadDB, r: EventRecord) -> None:
        db.execute(
            "INSERT INTO customers (customer_id, aggregate_id, country, registered_at)"
            " VALUES (?, ?, ?, ?)",
            (r.data["customer_id"], r.aggregate_id, r.data["country"], ts(r.at)),
        )

    def on_Customer_Updated(self, db: ReadDB, r: EventRecord) -> None:
        db.execute(
            "UPDATE customers SET country = ? WHERE aggregate_id = ?",
            (r.data["country"], r.aggregate_id),
        )

    def on_Customer_Erased(self, db: ReadDB, r: EventRecord) -> None:
        db.execute("UPDATE customers SET erased = 1 WHERE aggregate_id = ?", (r.aggregate_id,))

    # ---- subscriptions ------------------------------------------------------------------

    def apply(self, db: ReadDB, record: EventRecord) -> None:
        """Then, for every Subscription event: the status and MRR it carries, and when the
        subscription is next worth a look (none once it stops billing)."""
        super().apply(db, record)
        if record.aggregate_type == "Subscription":
            status = record.data["status"]
            live = 1 if status in LIVE else 0
            row = (record.aggregate_id, status, record.data["mrr"], ts(record.at), live)
            self._statuses.set(self, db, record.aggregate_id, row)

    def _sub(self, db: ReadDB, r: EventRecord) -> dict:
        """The subscription's id, customer and currency: fixed from its first event on, so
        kept once read (a bounded cache: a read per event of a long batch cost more than
        its writes)."""
        known = self._subs.get(r.aggregate_id)
        if known is None:
            rows = db.query(
                "SELECT subscription_id, customer_id, currency FROM subscriptions"
                " WHERE aggregate_id = ?",
                (r.aggregate_id,),
            )
            known = self._know(r.aggregate_id, rows[0])
        return known

    def _know(self, aggregate_id: str, sub: dict) -> dict:
        """Keep a subscription's fixed facts (from its row, or from its first event: the
        same whether or not that event's rows are then rolled back)."""
        if len(self._subs) >= SUB_CACHE:
            self._subs.clear()
        known = self._subs[aggregate_id] = {
            key: sub[key] for key in ("subscription_id", "customer_id", "currency")
        }
        return known

    def _period(self, db: ReadDB, r: EventRecord, extra: str = "", params: tuple = ()) -> None:
        db.execute(
            "UPDATE subscriptions SET current_period_start = ?, current_period_end = ?"
            f"{extra} WHERE aggregate_id = ?",
            (ts(r.data["period_start"]), ts(r.data["period_end"]), *params, r.aggregate_id),
        )

    def on_Subscription_Subscribed(self, db: ReadDB, r: EventRecord) -> None:
        d = r.data
        self._know(r.aggregate_id, d)
        db.execute(
            "INSERT INTO subscriptions (subscription_id, aggregate_id, customer_id, plan_id,"
            " plan_version, status, quantity, currency, mrr, current_period_start,"
            " current_period_end, trial_end, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                d["subscription_id"],
                r.aggregate_id,
                d["customer_id"],
                d["plan_id"],
                d["plan_version"],
                d["status"],
                d["quantity"],
                d["currency"],
                d["mrr"],
                ts(d["period_start"]),
                ts(d["period_end"]),
                ts(d["trial_end"]),
                ts(r.at),
                ts(r.at),
            ),
        )

    def on_Subscription_TrialConverted(self, db: ReadDB, r: EventRecord) -> None:
        self._period(db, r)

    def on_Subscription_Resumed(self, db: ReadDB, r: EventRecord) -> None:
        self._period(db, r)

    def on_Subscription_Renewed(self, db: ReadDB, r: EventRecord) -> None:
        self._period(db, r, ", plan_version = ?", (r.data["plan_version"],))

    def on_Subscription_PlanChanged(self, db: ReadDB, r: EventRecord) -> None:
        self._period(
            db,
            r,
            ", plan_id = ?, plan_version = ?, quantity = ?",
            (r.data["plan_id"], r.data["plan_version"], r.data["quantity"]),
        )

    def on_Subscription_QuantityChanged(self, db: ReadDB, r: EventRecord) -> None:
        db.execute(
            "UPDATE subscriptions SET quantity = ? WHERE aggregate_id = ?",
            (r.data["quantity"], r.aggregate_id),
        )

    def on_Subscription_CancellationScheduled(self, db: ReadDB, r: EventRecord) -> None:
        db.execute(
            "UPDATE subscriptions SET cancel_at_period_end = 1 WHERE aggregate_id = ?",
            (r.aggregate_id,),
        )

    def on_Subscription_Reactivated(self, db: ReadDB, r: EventRecord) -> None:
        self._period(
            db,
            r,
            ", plan_version = ?, cancel_at_period_end = 0, canceled_at = NULL,"
            " churn_kind = NULL, churn_reason = NULL",
            (r.data["plan_version"],),
        )

    def on_Subscription_RenewalReminderIssued(self, db: ReadDB, r: EventRecord) -> None:
        self._reminded(db, r, r.data["renews_at"])

    def on_Subscription_TrialEndingSoon(self, db: ReadDB, r: EventRecord) -> None:
        self._reminded(db, r, r.data["trial_end"])

    def _reminded(self, db: ReadDB, r: EventRecord, period_end: datetime) -> None:
        """Told of this period's end: not a reminder candidate again until the next one."""
        db.execute(
            "UPDATE subscriptions SET reminded_for = ? WHERE aggregate_id = ?",
            (ts(period_end), r.aggregate_id),
        )

    def on_Subscription_Churned(self, db: ReadDB, r: EventRecord) -> None:
        sub = self._sub(db, r)
        db.execute(
            "UPDATE subscriptions SET canceled_at = ?, churn_kind = ?, churn_reason = ?,"
            " cancel_at_period_end = 0, next_retry_at = NULL WHERE aggregate_id = ?",
            (ts(r.at), r.data["kind"], r.data["reason"], r.aggregate_id),
        )
        for number in r.data["written_off"]:
            db.execute(
                "UPDATE invoices SET status = ?, next_retry_at = NULL"
                " WHERE number = ? AND subscription_id = ?",
                (UNCOLLECTIBLE, number, sub["subscription_id"]),
            )

    # ---- invoices and payments ----------------------------------------------------------

    def on_Subscription_Invoiced(self, db: ReadDB, r: EventRecord) -> None:
        d, sub = r.data, self._sub(db, r)
        db.execute(
            "INSERT INTO invoices (number, subscription_id, customer_id, currency, reason,"
            " issued_at, period_start, period_end, subtotal, tax, total, credit_applied,"
            " amount_due, status, paid_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                d["number"],
                sub["subscription_id"],
                sub["customer_id"],
                sub["currency"],
                d["reason"],
                ts(r.at),
                ts(d["period_start"]),
                ts(d["period_end"]),
                d["subtotal"],
                d["tax"],
                d["total"],
                d["credit_applied"],
                d["amount_due"],
                OPEN if d["amount_due"] > 0 else PAID,
                None if d["amount_due"] > 0 else ts(r.at),
            ),
        )
        for i, ln in enumerate(d["lines"], 1):
            span = ts(ln["period_start"]), ts(ln["period_end"])
            line = (d["number"], i, ln["kind"], ln["description"], ln["amount"], *span)
            self._lines.set(self, db, (d["number"], i), line)
        if not d.get("customer_credit"):  # an earlier version's: the subscription's own credit
            db.execute(
                "UPDATE subscriptions SET credit_balance = ? WHERE aggregate_id = ?",
                (d["credit_balance_after"], r.aggregate_id),
            )

    def _payment(self, db: ReadDB, r: EventRecord, outcome: str) -> dict:
        d, sub = r.data, self._sub(db, r)
        self._payments.set(
            self,
            db,
            r.event_id,
            (
                r.event_id,
                d["number"],
                sub["subscription_id"],
                sub["customer_id"],
                sub["currency"],
                d["amount"],
                ts(r.at),
                outcome,
                d["attempt"],
                d.get("reason"),
                d.get("reference"),
                d.get("message"),
            ),
        )
        return sub

    # columns added by issue 9 (payments) to tables that older read DBs already have: a
    # NULL there is what a rebuild gives too (no charge pending, no decline message)
    ADDED_COLUMNS = {"invoices": {"charging": "INTEGER"}, "payments": {"message": "TEXT"}}
    # and by issue 13: the period end a reminder was sent for; NULL (not known to be
    # reminded) keeps a subscription a reminder candidate, as the hint may over-ask
    ADDED_COLUMNS["subscriptions"] = {"reminded_for": "TEXT"}

    def create(self, db: ReadDB) -> None:
        self._subs.clear()  # a new or rebuilt read DB: nothing known of it yet
        super().create(db)
        with db.transaction():
            for table, columns in self.ADDED_COLUMNS.items():
                cur = db.conn.cursor()
                cur.execute(f"SELECT * FROM {table} WHERE 1 = 0")
                have = {d[0] for d in cur.description}
                cur.close()
                for column, kind in columns.items():
                    if column not in have:
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            for ddl in self.SCHEDULE_INDEXES:
                db.execute(ddl)

    def on_Subscription_ChargeRequested(self, db: ReadDB, r: EventRecord) -> None:
        """A charge is pending at the gateway: no retry is due until its outcome."""
        db.execute(
            "UPDATE invoices SET charging = ?, next_retry_at = NULL WHERE number = ?",
            (r.data["attempt"], r.data["number"]),
        )
        self._next_retry(db, r, self._sub(db, r))

    def _next_retry(self, db: ReadDB, r: EventRecord, sub: dict) -> None:
        db.execute(
            "UPDATE subscriptions SET next_retry_at = (SELECT MIN(next_retry_at) FROM invoices"
            " WHERE subscription_id = ? AND status = ?) WHERE aggregate_id = ?",
            (sub["subscription_id"], OPEN, r.aggregate_id),
        )

    def on_Subscription_PaymentSucceeded(self, db: ReadDB, r: EventRecord) -> None:
        sub = self._payment(db, r, SUCCEEDED)
        db.execute(
            "UPDATE invoices SET status = ?, amount_paid = ?, paid_at = ?, attempts = ?,"
            " next_retry_at = NULL, charging = NULL WHERE number = ?",
            (PAID, r.data["amount"], ts(r.at), r.data["attempt"], r.data["number"]),
        )
        self._next_retry(db, r, sub)

    def on_Subscription_PaymentFailed(self, db: ReadDB, r: EventRecord) -> None:
        sub = self._payment(db, r, FAILED)
        db.execute(
            "UPDATE invoices SET attempts = ?, next_retry_at = ?, charging = NULL WHERE number = ?",
            (r.data["attempt"], ts(r.data["next_retry_at"]), r.data["number"]),
        )
        self._next_retry(db, r, sub)


class BillingSchedule:
    """The ledger's due-work hint, read from the billing model (the aggregate decides).

    A subscription is a candidate when its next period end, trial end or payment retry is
    due, or a renewal reminder or trial-ending notice may be and was not yet sent for its
    current period (each plan's lead time, per `domain.subscription.schedule.ReminderLeads`:
    a superset is safe, a miss is not).
    """

    def __init__(
        self,
        db: ReadDB,
        catch_up: Callable[[], object] | None = None,
        leads: ReminderLeads | None = None,
    ) -> None:
        self.db = db
        self.catch_up = catch_up
        self.leads = leads or ReminderLeads()

    def due_subscriptions(self, up_to: datetime) -> list[UUID]:
        if self.catch_up:
            self.catch_up()
        leads = self.leads

        def horizon(days: int) -> str | None:
            return ts(up_to + timedelta(days=max(days, 0)))

        days = (
            "(CASE p.interval_unit WHEN 'day' THEN 1 WHEN 'week' THEN 7 WHEN 'month' THEN 28"
            " ELSE 365 END) * p.interval_count"
        )  # a plan's shortest period: ReminderLeads.for_interval's rule
        annual = (
            "(p.interval_unit = 'year' OR (p.interval_unit = 'month'"
            f" AND p.interval_count >= 12) OR {days} >= 365)"
        )  # a plan of a year or longer: schedule.is_annual
        unreminded = "(s.reminded_for IS NULL OR s.reminded_for <> s.current_period_end)"
        live = f"s.next_check_at IS NOT NULL AND {unreminded}"  # SCHEDULE_INDEXES' condition
        # three index ranges, not a scan of every subscription each time the clock moves:
        # work due by the next check; per plan, a renewal reminder within its lead; a
        # trial's end notice within its lead (the reminders only while not yet sent)
        rows = self.db.query(
            "SELECT s.subscription_id, s.next_check_at FROM subscriptions s"
            " WHERE s.next_check_at <= ?"
            " UNION SELECT s.subscription_id, s.next_check_at"
            " FROM plans p CROSS JOIN subscriptions s"  # each plan's range of its own
            f" WHERE s.plan_id = p.plan_id AND {live} AND s.status IN ({marks(PAYING)})"
            f" AND {days} >= (CASE WHEN {annual} THEN ? ELSE ? END)"
            f" AND s.current_period_end <= (CASE WHEN {annual} THEN ? ELSE ? END)"
            " UNION SELECT s.subscription_id, s.next_check_at FROM subscriptions s"
            f" WHERE {live} AND s.status = ? AND s.current_period_end <= ?"
            " ORDER BY 2",
            (
                ts(up_to),
                *PAYING,
                2 * leads.annual_days,
                2 * leads.days,
                horizon(leads.annual_days),
                horizon(leads.days),
                TRIALING,
                horizon(leads.trial_days),
            ),
        )
        return [subscription_uuid(row["subscription_id"]) for row in rows]

    def subscriptions_on_plan(self, plan_id: str) -> list[UUID]:
        if self.catch_up:
            self.catch_up()
        rows = self.db.query(
            "SELECT subscription_id FROM subscriptions"
            f" WHERE plan_id = ? AND status IN ({marks(LIVE)})",
            (plan_id, *LIVE),
        )
        return [subscription_uuid(row["subscription_id"]) for row in rows]
