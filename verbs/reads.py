"""The columns each read returns, and the reads whose rows differ by output format.

Declared, so an empty result still prints its header; keys a read adds later are appended.
"""

from __future__ import annotations

from typing import Any

from verbs.render import to_json

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
CREDIT_NOTE_COLUMNS = (  # credit
    "number",
    "invoice_number",
    "subscription_id",
    "customer_id",
    "currency",
    "amount",
    "reason",
    "method",
    "issued_at",
    "refund_status",
    "refund_reference",
)
CREDIT_MOVEMENT_COLUMNS = (  # `credit` is the balance after the movement
    "at",
    "currency",
    "kind",
    "amount",
    "credit",
    "source",
    "reason",
    "reference",
)
HISTORY_COLUMNS = (  # `at` is the effective time; `recorded_at` empty before it existed
    "at",
    "recorded_at",
    "aggregate",
    "subscription_id",
    "version",
    "event",
    "status",
    "currency",
    "mrr",
    "actor",
    "source",
    "command",
    "command_id",
    "correlation_id",
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
    "arpu",
    "ltv",
)
COHORT_COLUMNS = ("cohort", "customers")  # then m0, m1, ... as far as the data reaches
REVENUE_COHORT_COLUMNS = ("cohort", "currency", "customers", "mrr")  # then m0, m1, ...
REVENUE_COLUMNS = (
    "currency",
    "month",
    "billed",
    "tax",
    "collected",
    "recognised",
    "written_off",
    "outstanding",
    "deferred_at_end",
)
DEFERRED_COLUMNS = ("currency", "billed_net", "recognised", "deferred")
DEFERRED_INVOICE_COLUMNS = (
    "number",
    "customer_id",
    "currency",
    "issued_at",
    "period_start",
    "period_end",
    "billed_net",
    "recognised",
    "deferred",
)
RENEWAL_COLUMNS = (
    "subscription_id",
    "customer_id",
    "plan_id",
    "currency",
    "quantity",
    "renews_at",
    "amount",
)


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
            **{k: v for k, v in r.items() if k != "retention"},
            **{f"m{i}": _ratio(v, fmt) for i, v in enumerate(r["retention"])},
        }
        for r in cohorts
    ]


def _ratio(value: float | None, fmt: str) -> float | str | None:
    if fmt == "csv" or value is None:
        return value
    return f"{value:.0%}"


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
