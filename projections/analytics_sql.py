"""The analysts' views as SQL, one SELECT per view (projections/analytics.py creates them).

Each view is written once; only date maths and exact integer division differ by dialect
(`Dialect`). Times stay ISO text (UTC) with `_day`/`_month` text twins; amounts are integer
minor units beside a `currency`. docs/analytics.md documents every column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from projections.statuses import FAILED, OPEN, UNCOLLECTIBLE

TAX = "tax"  # domain.invoicing's tax line kind: never revenue


@dataclass(frozen=True)
class Dialect:
    """The few expressions SQLite and PostgreSQL spell differently (`{x}` is the operand)."""

    epoch: str  # ISO text -> whole seconds since 1970
    month_of_epoch: str  # seconds -> 'YYYY-MM'
    next_month: str  # 'YYYY-MM' -> the month after
    next_day: str  # 'YYYY-MM-DD' -> the day after
    muldiv: str  # trunc({a} * {b} / {c}) toward zero, exact


SQLITE = Dialect(
    epoch="CAST(strftime('%s', {x}) AS INTEGER)",
    month_of_epoch="strftime('%Y-%m', {x}, 'unixepoch')",
    next_month="strftime('%Y-%m', {x} || '-01', '+1 month')",
    next_day="date({x}, '+1 day')",
    muldiv="(({a}) * ({b}) / ({c}))",  # 64-bit integers; C division truncates toward zero
)
POSTGRES = Dialect(
    epoch="CAST(EXTRACT(EPOCH FROM CAST({x} AS TIMESTAMPTZ)) AS BIGINT)",
    month_of_epoch="to_char(to_timestamp({x}) AT TIME ZONE 'UTC', 'YYYY-MM')",
    next_month="to_char(CAST({x} || '-01' AS DATE) + INTERVAL '1 month', 'YYYY-MM')",
    next_day="to_char(CAST({x} AS DATE) + 1, 'YYYY-MM-DD')",
    muldiv="CAST(div(CAST({a} AS NUMERIC) * ({b}), ({c})) AS BIGINT)",  # exact, truncating
)


def lit(value: str) -> str:
    """A status word as an SQL literal (views take no parameters)."""
    return "'" + value.replace("'", "''") + "'"


def t(expr: str, name: str, stem: str | None = None) -> str:
    """A time column and its `<stem>_day` / `<stem>_month` text twins."""
    day, month = (f"{stem}_day", f"{stem}_month") if stem else ("day", "month")
    return f"{expr} AS {name}, substr({expr}, 1, 10) AS {day}, substr({expr}, 1, 7) AS {month}"


def _sum(expr: str) -> str:
    """SUM as BIGINT on both backends (PostgreSQL's SUM of a BIGINT is NUMERIC)."""
    return f"CAST(COALESCE(SUM({expr}), 0) AS BIGINT)"


def _ratio(numerator: str, denominator: str) -> str:
    """A float ratio, NULL when the denominator is 0 (ratios are not money)."""
    return f"CAST({numerator} AS DOUBLE PRECISION) / NULLIF({denominator}, 0)"


def _months(d: Dialect, first: str, last: str) -> str:
    """A recursive CTE `months(month)`: 'YYYY-MM' from `first` to `last` (subqueries)."""
    return (
        f"months(month) AS (SELECT ({first}) WHERE ({first}) IS NOT NULL"
        f" UNION ALL SELECT {d.next_month.format(x='month')} FROM months"
        f" WHERE month < ({last}))"
    )


def month_start(month: str) -> str:
    """'YYYY-MM' -> the ISO text of its first instant."""
    return f"{month} || '-01T00:00:00Z'"


# ---- the views ---------------------------------------------------------------------------


def customers(d: Dialect) -> str:
    return (
        f"SELECT c.customer_id, c.country, {t('c.registered_at', 'registered_at', 'registered')},"
        f" {t('f.first_paid_at', 'first_paid_at', 'first_paid')}, c.erased"
        " FROM customers c LEFT JOIN (SELECT customer_id, MIN(first_active_at) AS first_paid_at"
        " FROM metrics_customers GROUP BY customer_id) f ON f.customer_id = c.customer_id"
    )


def plans(d: Dialect) -> str:
    return (
        "SELECT plan_id, name, currency, interval_unit, interval_count, trial_days,"
        f" price_version, retired, {t('defined_at', 'defined_at', 'defined')} FROM plans"
    )


def subscriptions(d: Dialect) -> str:
    return (
        "SELECT s.subscription_id, s.customer_id, s.plan_id, s.plan_version, s.status,"
        " s.quantity, s.currency, s.mrr,"
        f" {t('s.created_at', 'created_at', 'created')},"
        f" {t('s.current_period_start', 'current_period_start', 'current_period_start')},"
        f" {t('s.current_period_end', 'current_period_end', 'current_period_end')},"
        f" {t('s.trial_end', 'trial_end', 'trial_end')},"
        f" {t('m.trial_ended_at', 'trial_ended_at', 'trial_ended')}, m.trial_converted,"
        f" s.cancel_at_period_end, {t('s.canceled_at', 'canceled_at', 'canceled')},"
        " s.churn_kind, s.churn_reason"
        " FROM subscriptions s LEFT JOIN metrics_subscriptions m"
        " ON m.aggregate_id = s.aggregate_id"
    )


def invoices(d: Dialect) -> str:
    credited = "(SELECT SUM(n.amount) FROM credit_notes n WHERE n.invoice_number = i.number)"
    return (
        "SELECT i.number AS invoice_number, i.subscription_id, i.customer_id, i.currency,"
        f" i.reason, i.status, {t('i.issued_at', 'issued_at', 'issued')},"
        f" {t('i.period_start', 'period_start', 'period_start')},"
        f" {t('i.period_end', 'period_end', 'period_end')},"
        " i.subtotal, i.tax, i.total, i.credit_applied, i.amount_due, i.amount_paid,"
        f" CASE WHEN i.status = {lit(OPEN)} THEN i.amount_due - i.amount_paid ELSE 0 END"
        " AS amount_outstanding,"
        f" CASE WHEN i.status = {lit(UNCOLLECTIBLE)} THEN i.amount_due - i.amount_paid ELSE 0"
        f" END AS amount_written_off, CAST(COALESCE({credited}, 0) AS BIGINT) AS amount_credited,"
        f" i.attempts, {t('i.next_retry_at', 'next_retry_at', 'next_retry')},"
        f" {t('i.paid_at', 'paid_at', 'paid')} FROM invoices i"
    )


def _line_period(edge: str) -> str:
    """A line's own service period when it has both ends, else its invoice's."""
    return (
        f"CASE WHEN l.period_start IS NOT NULL AND l.period_end IS NOT NULL"
        f" THEN l.period_{edge} ELSE i.period_{edge} END"
    )


def invoice_lines(d: Dialect) -> str:
    return (
        "SELECT l.number AS invoice_number, l.line_no, i.subscription_id, i.customer_id,"
        " i.currency, l.kind, l.description, l.amount,"
        f" {t(_line_period('start'), 'period_start', 'period_start')},"
        f" {t(_line_period('end'), 'period_end', 'period_end')},"
        f" {t('i.issued_at', 'issued_at', 'issued')}"
        " FROM invoice_lines l JOIN invoices i ON i.number = l.number"
    )


def credit_notes(d: Dialect) -> str:
    def lines(kind: str) -> str:
        return (
            f"CAST(COALESCE((SELECT SUM(cl.amount) FROM credit_note_lines cl WHERE"
            f" cl.number = n.number AND cl.kind {kind} {lit(TAX)}), 0) AS BIGINT)"
        )

    return (
        "SELECT n.number AS credit_note_number, n.invoice_number, n.subscription_id,"
        f" n.customer_id, n.currency, n.amount, {lines('<>')} AS net_amount,"
        f" {lines('=')} AS tax, n.reason, n.method, n.refund_status,"
        " COALESCE(r.amount, 0) AS refund_amount,"
        f" {t('n.issued_at', 'issued_at', 'issued')},"
        f" {t('r.settled_at', 'refund_settled_at', 'refund_settled')}"
        " FROM credit_notes n LEFT JOIN refunds r ON r.credit_note = n.number"
    )


def payments(d: Dialect) -> str:
    return (
        "SELECT event_id AS payment_id, number AS invoice_number, subscription_id, customer_id,"
        f" currency, amount, outcome, attempt, reason, {t('at', 'at')} FROM payments"
    )


def mrr_movements(d: Dialect) -> str:
    return (
        "SELECT event_id AS movement_id, customer_id, subscription_id, currency,"
        f" {t('at', 'at')}, kind, delta, mrr_before, mrr_after FROM mrr_movements"
    )


def mrr_daily(d: Dialect) -> str:
    """Each day from a currency's first movement to the book's latest movement (any currency):
    a bound the data decides, so the same book gives the same rows whenever it is read."""
    days = (
        "days(day) AS (SELECT (SELECT MIN(substr(at, 1, 10)) FROM mrr_movements)"
        " WHERE EXISTS (SELECT 1 FROM mrr_movements)"
        f" UNION ALL SELECT {d.next_day.format(x='day')} FROM days"
        " WHERE day < (SELECT MAX(substr(at, 1, 10)) FROM mrr_movements))"
    )
    paying = (
        "CASE WHEN mrr_after > 0 THEN 1 ELSE 0 END - CASE WHEN mrr_before > 0 THEN 1 ELSE 0 END"
    )
    return (
        f"WITH RECURSIVE {days},"
        " daily AS (SELECT currency, substr(at, 1, 10) AS day, SUM(delta) AS delta,"
        f" SUM({paying}) AS customers FROM mrr_movements GROUP BY currency, substr(at, 1, 10)),"
        " subs AS (SELECT currency, substr(at, 1, 10) AS day, SUM(change) AS change"
        " FROM subscriber_changes GROUP BY currency, substr(at, 1, 10)),"
        " firsts AS (SELECT currency, MIN(day) AS first_day FROM daily GROUP BY currency),"
        " figures AS (SELECT x.day, f.currency,"
        " (SELECT SUM(a.delta) FROM daily a WHERE a.currency = f.currency AND a.day <= x.day)"
        " AS mrr,"
        " (SELECT SUM(a.customers) FROM daily a WHERE a.currency = f.currency AND a.day <= x.day)"
        " AS customers,"
        " (SELECT SUM(s.change) FROM subs s WHERE s.currency = f.currency AND s.day <= x.day)"
        " AS subscriptions,"
        " (SELECT SUM(a.delta) FROM daily a WHERE a.currency = f.currency AND a.day = x.day)"
        " AS change FROM days x JOIN firsts f ON x.day >= f.first_day)"
        " SELECT day, substr(day, 1, 7) AS month, currency,"
        " CAST(mrr AS BIGINT) AS mrr, CAST(12 * mrr AS BIGINT) AS arr,"
        " CAST(customers AS BIGINT) AS paying_customers,"
        " CAST(COALESCE(subscriptions, 0) AS BIGINT) AS active_subscriptions,"
        " CAST(COALESCE(change, 0) AS BIGINT) AS mrr_change FROM figures"
    )


KINDS = ("new", "expansion", "contraction", "churn", "reactivation")  # reports.KINDS


def churn(d: Dialect) -> str:
    """Per month and currency, ChartMogul's figures as `report churn` gives them for it."""
    first = "SELECT MIN(substr(at, 1, 7)) FROM mrr_movements"
    last = "SELECT MAX(substr(at, 1, 7)) FROM mrr_movements"
    by_kind = ", ".join(
        f"SUM(CASE WHEN kind = {lit(k)} THEN delta ELSE 0 END) AS {k}" for k in KINDS
    )
    paying = (
        "CASE WHEN mrr_after > 0 THEN 1 ELSE 0 END - CASE WHEN mrr_before > 0 THEN 1 ELSE 0 END"
    )
    return (
        f"WITH RECURSIVE {_months(d, first, last)},"
        f" moved AS (SELECT currency, substr(at, 1, 7) AS month, {by_kind},"
        f" SUM(delta) AS net, SUM({paying}) AS customers FROM mrr_movements"
        " GROUP BY currency, substr(at, 1, 7)),"
        " cm AS (SELECT customer_id, currency, substr(at, 1, 7) AS month, SUM(delta) AS delta"
        " FROM mrr_movements GROUP BY customer_id, currency, substr(at, 1, 7)),"
        # who churned in a month, counted when they were paying at its start
        " churned AS (SELECT x.currency, x.month, COUNT(*) AS n FROM (SELECT DISTINCT"
        " customer_id, currency, substr(at, 1, 7) AS month FROM mrr_movements"
        f" WHERE kind = {lit('churn')}) x WHERE (SELECT SUM(p.delta) FROM cm p"
        " WHERE p.customer_id = x.customer_id AND p.currency = x.currency"
        " AND p.month < x.month) > 0 GROUP BY x.currency, x.month),"
        " grid AS (SELECT m.month, c.currency FROM months m JOIN (SELECT currency,"
        " MIN(month) AS first_month FROM moved GROUP BY currency) c ON m.month >= c.first_month),"
        " figures AS (SELECT g.month, g.currency,"
        f" (SELECT {_sum('b.customers')} FROM moved b WHERE b.currency = g.currency"
        " AND b.month < g.month) AS customers_at_start,"
        " (SELECT CAST(COALESCE(MAX(n), 0) AS BIGINT) FROM churned x"
        " WHERE x.currency = g.currency AND x.month = g.month) AS customers_churned,"
        f" (SELECT {_sum('b.net')} FROM moved b WHERE b.currency = g.currency"
        " AND b.month < g.month) AS mrr_at_start,"
        + ", ".join(f"{_sum('a.' + k)} AS {k}" for k in (*KINDS, "net"))
        + " FROM grid g LEFT JOIN moved a ON a.currency = g.currency AND a.month = g.month"
        " GROUP BY g.month, g.currency)"
        " SELECT month, currency, customers_at_start, customers_churned, mrr_at_start,"
        " new AS new_mrr, expansion AS expansion_mrr, -contraction AS contraction_mrr,"
        " -churn AS churned_mrr, reactivation AS reactivation_mrr, net AS net_mrr_change,"
        f" {_ratio('customers_churned', 'customers_at_start')} AS logo_churn_rate,"
        f" {_ratio('-churn - contraction', 'mrr_at_start')} AS revenue_churn_rate,"
        f" {_ratio('-net + new', 'mrr_at_start')} AS net_revenue_churn_rate FROM figures"
    )


def cohorts(d: Dialect) -> str:
    """Customers by the month they first paid (per currency), followed month by month."""
    first = "SELECT MIN(substr(at, 1, 7)) FROM mrr_movements"
    last = "SELECT MAX(substr(at, 1, 7)) FROM mrr_movements"

    def index(month: str) -> str:
        year, number = f"substr({month}, 1, 4)", f"substr({month}, 6, 2)"
        return f"(CAST({year} AS INTEGER) * 12 + CAST({number} AS INTEGER))"

    return (
        f"WITH RECURSIVE {_months(d, first, last)},"
        " cm AS (SELECT customer_id, currency, substr(at, 1, 7) AS month, SUM(delta) AS delta"
        " FROM mrr_movements GROUP BY customer_id, currency, substr(at, 1, 7)),"
        " members AS (SELECT customer_id, currency, MIN(substr(at, 1, 7)) AS cohort_month"
        " FROM mrr_movements WHERE mrr_after > 0 GROUP BY customer_id, currency),"
        " state AS (SELECT mb.cohort_month, m.month, mb.currency, mb.customer_id,"
        " SUM(cm.delta) AS mrr FROM members mb JOIN months m ON m.month >= mb.cohort_month"
        " JOIN cm ON cm.customer_id = mb.customer_id AND cm.currency = mb.currency"
        " AND cm.month <= m.month GROUP BY mb.cohort_month, m.month, mb.currency, mb.customer_id),"
        " firsts AS (SELECT cohort_month, currency, SUM(mrr) AS mrr FROM state"
        " WHERE month = cohort_month GROUP BY cohort_month, currency),"
        " grouped AS (SELECT s.cohort_month, s.month, s.currency, COUNT(*) AS cohort_customers,"
        " SUM(CASE WHEN s.mrr > 0 THEN 1 ELSE 0 END) AS customers, SUM(s.mrr) AS mrr"
        " FROM state s GROUP BY s.cohort_month, s.month, s.currency)"
        f" SELECT g.cohort_month, g.month, {index('g.month')} - {index('g.cohort_month')}"
        " AS months_since, g.currency, CAST(g.cohort_customers AS BIGINT) AS cohort_customers,"
        " CAST(g.customers AS BIGINT) AS customers, CAST(f.mrr AS BIGINT) AS cohort_mrr,"
        " CAST(g.mrr AS BIGINT) AS mrr,"
        f" {_ratio('g.customers', 'g.cohort_customers')} AS customer_retention,"
        f" {_ratio('g.mrr', 'f.mrr')} AS revenue_retention"
        " FROM grouped g JOIN firsts f ON f.cohort_month = g.cohort_month"
        " AND f.currency = g.currency"
    )


def revenue_schedule(d: Dialect) -> str:
    """Each non-tax invoice line and credit note line, recognised by the second over its
    service period and bucketed by UTC month: the shared rule (docs/analytics.md)."""
    after_end = "n.issued_at >= i.period_end"
    items = (
        "items AS (SELECT 'invoice' AS document_kind, l.number AS document_number,"
        " l.number AS invoice_number, l.line_no, l.kind AS line_kind, i.subscription_id,"
        " i.customer_id, i.currency, l.amount AS line_amount, i.issued_at,"
        f" {_line_period('start')} AS service_start, {_line_period('end')} AS service_end"
        f" FROM invoice_lines l JOIN invoices i ON i.number = l.number WHERE l.kind <> {lit(TAX)}"
        " UNION ALL SELECT 'credit_note', n.number, n.invoice_number, l.line_no, l.kind,"
        " n.subscription_id, n.customer_id, n.currency, -l.amount, n.issued_at,"
        f" CASE WHEN {after_end} OR n.issued_at > i.period_start THEN n.issued_at"
        f" ELSE i.period_start END, CASE WHEN {after_end} THEN n.issued_at ELSE i.period_end END"
        " FROM credit_note_lines l JOIN credit_notes n ON n.number = l.number"
        f" JOIN invoices i ON i.number = n.invoice_number WHERE l.kind <> {lit(TAX)})"
    )
    seconds = (
        "timed AS (SELECT items.*,"
        f" {d.epoch.format(x='issued_at')} AS d_s, {d.epoch.format(x='service_start')} AS s_s,"
        f" {d.epoch.format(x='service_end')} AS e_s FROM items)"
    )

    def larger(a: str, b: str) -> str:
        return f"CASE WHEN {a} > {b} THEN {a} ELSE {b} END"

    # the first and last instants at which the item's cumulative figure can change
    spans = (
        "spans AS (SELECT timed.*,"
        f" {larger('d_s', 's_s')} + 1 AS first_s,"
        f" CASE WHEN e_s > s_s THEN {larger('e_s', 'd_s + 1')} ELSE {larger('d_s', 's_s')} + 1 END"
        " AS last_s FROM timed)"
    )
    first = f"SELECT MIN({d.month_of_epoch.format(x='first_s - 1')}) FROM spans"
    last = f"SELECT MAX({d.month_of_epoch.format(x='last_s - 1')}) FROM spans"
    calendar = (
        "calendar AS (SELECT month,"
        f" {d.epoch.format(x=month_start('month'))} AS start_s,"
        f" {d.epoch.format(x=month_start(d.next_month.format(x='month')))} AS end_s FROM months)"
    )

    def cum(at: str) -> str:
        return (
            f"CASE WHEN {at} <= s.d_s THEN 0"
            f" WHEN s.e_s <= s.s_s THEN CASE WHEN {at} > s.s_s THEN s.line_amount ELSE 0 END"
            f" WHEN {at} <= s.s_s THEN 0 WHEN {at} >= s.e_s THEN s.line_amount"
            f" ELSE {d.muldiv.format(a='s.line_amount', b=f'{at} - s.s_s', c='s.e_s - s.s_s')}"
            " END"
        )

    return (
        f"WITH RECURSIVE {items}, {seconds}, {spans}, {_months(d, first, last)}, {calendar},"
        " buckets AS (SELECT s.document_kind, s.document_number, s.invoice_number, s.line_no,"
        " s.line_kind, s.subscription_id, s.customer_id, s.currency, c.month,"
        f" ({cum('c.end_s')}) - ({cum('c.start_s')}) AS amount, s.line_amount, s.service_start,"
        " s.service_end, s.issued_at FROM spans s JOIN calendar c"
        " ON c.start_s < s.last_s AND c.end_s >= s.first_s)"
        " SELECT document_kind, document_number, invoice_number, line_no, line_kind,"
        " subscription_id, customer_id, currency, month, CAST(amount AS BIGINT) AS amount,"
        " line_amount, service_start, service_end,"
        f" {t('issued_at', 'issued_at', 'issued')} FROM buckets WHERE amount <> 0"
    )


def dunning(d: Dialect) -> str:
    """Open invoices a charge has failed on: what is owed, how often it failed, what next."""
    last_reason = (
        "(SELECT p.reason FROM payments p WHERE p.number = i.number"
        f" AND p.outcome = {lit(FAILED)} ORDER BY p.at DESC, p.attempt DESC LIMIT 1)"
    )
    return (
        "SELECT i.number AS invoice_number, i.subscription_id, i.customer_id, c.country,"
        " s.plan_id, s.status AS subscription_status, i.currency,"
        " i.amount_due - i.amount_paid AS amount_outstanding, i.attempts,"
        f" f.failed_attempts, {t('f.last_failed_at', 'last_failed_at', 'last_failed')},"
        f" {last_reason} AS last_failure_reason,"
        f" {t('i.next_retry_at', 'next_retry_at', 'next_retry')},"
        f" {t('i.issued_at', 'issued_at', 'issued')}"
        " FROM invoices i JOIN (SELECT number, COUNT(*) AS failed_attempts, MAX(at)"
        f" AS last_failed_at FROM payments WHERE outcome = {lit(FAILED)} GROUP BY number) f"
        " ON f.number = i.number"
        " LEFT JOIN subscriptions s ON s.subscription_id = i.subscription_id"
        f" LEFT JOIN customers c ON c.customer_id = i.customer_id WHERE i.status = {lit(OPEN)}"
    )


VIEWS: dict[str, Callable[[Dialect], str]] = {
    "customers": customers,
    "plans": plans,
    "subscriptions": subscriptions,
    "invoices": invoices,
    "invoice_lines": invoice_lines,
    "credit_notes": credit_notes,
    "payments": payments,
    "mrr_movements": mrr_movements,
    "mrr_daily": mrr_daily,
    "churn": churn,
    "cohorts": cohorts,
    "revenue_schedule": revenue_schedule,
    "dunning": dunning,
}
