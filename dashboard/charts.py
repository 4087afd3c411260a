"""The dashboard's Plotly figures, drawn from the rows its CSV files hold.

Amounts reach the browser as decimal text in the currency's units ("3741.41", from
`format_amount`), never as floats computed here: Plotly parses the text to draw it.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from domain.money import format_amount

COLOURS = {
    "new": "#2e7d32",
    "expansion": "#66bb6a",
    "reactivation": "#26a69a",
    "contraction": "#ffa726",
    "churn": "#e53935",
    "billed": "#1e88e5",
    "collected": "#43a047",
    "recognised": "#8e24aa",
    "deferred": "#fb8c00",
}


def money(minor: Any, currency: str) -> str:
    """An amount for people: '3741.41 USD'; a dash when there is none."""
    if minor is None:
        return "-"
    try:
        return f"{format_amount(int(minor), currency)} {currency}"
    except Exception:  # a currency without known decimals: the minor units are still true
        return f"{minor} {currency} (minor units)"


def percent(rate: Any) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def _units(minor: int, currency: str) -> str:
    try:
        return format_amount(int(minor), currency)
    except Exception:
        return str(minor)


def _amounts(rows: list[dict[str, Any]], key: str, currency: str, sign: int = 1) -> list[str]:
    return [_units(sign * int(r.get(key) or 0), currency) for r in rows]


def _bars(
    months: list[dict[str, Any]],
    currency: str,
    bars: tuple[tuple[str, str, str, int], ...],
    line: tuple[str, str, str] | None = None,
) -> go.Figure:
    """Monthly bars (key, name, colour, sign) and, optionally, a line (key, name, colour)."""
    fig = go.Figure()
    x = [m["month"] for m in months]
    for key, name, colour, sign in bars:
        fig.add_trace(
            go.Bar(x=x, y=_amounts(months, key, currency, sign), name=name, marker_color=colour)
        )
    if line is not None:
        key, name, colour = line
        fig.add_trace(
            go.Scatter(
                x=x,
                y=_amounts(months, key, currency),
                name=name,
                mode="lines+markers",
                line={"color": colour},
            )
        )
    return fig


def _layout(fig: go.Figure, title: str, currency: str | None = None, **more: Any) -> go.Figure:
    layout = {
        "template": "plotly_white",
        "title": {"text": title, "font": {"size": 15}},
        "height": 380,
        "margin": {"l": 60, "r": 30, "t": 50, "b": 40},
        "legend": {"orientation": "h", "y": -0.15},
        "hovermode": "x unified",
    }
    fig.update_layout(**(layout | more))
    if currency:  # amounts arrive as decimal text: a linear axis reads them as numbers
        fig.update_yaxes(title_text=currency, type="linear")
    return fig


def mrr_arr(points: list[dict[str, Any]], currency: str) -> go.Figure | None:
    if not points:
        return None
    months = [p["month"] for p in points]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=months,
            y=_amounts(points, "mrr", currency),
            name="MRR",
            mode="lines+markers",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=months,
            y=_amounts(points, "arr", currency),
            name="ARR (right axis)",
            mode="lines+markers",
            yaxis="y2",
            line={"dash": "dot"},
        )
    )
    return _layout(
        fig,
        f"MRR and ARR ({currency})",
        currency,
        yaxis2={
            "overlaying": "y",
            "side": "right",
            "type": "linear",
            "title": {"text": f"ARR {currency}"},
        },
    )


def waterfall(steps: list[dict[str, Any]], currency: str) -> go.Figure:
    measure = ["absolute", *["relative"] * (len(steps) - 2), "total"]
    labels = [
        "opening" if s["step"] == "opening" else "closing" if s["step"] == "closing" else s["month"]
        for s in steps
    ]
    fig = go.Figure(
        go.Waterfall(
            x=labels,
            y=[_units(s["amount"], currency) for s in steps],
            measure=measure,
            increasing={"marker": {"color": COLOURS["new"]}},
            decreasing={"marker": {"color": COLOURS["churn"]}},
            totals={"marker": {"color": COLOURS["billed"]}},
            name="MRR",
        )
    )
    fig = _layout(fig, f"MRR waterfall by month ({currency})", currency, hovermode="closest")
    fig.update_xaxes(type="category")  # "opening" and "closing" are not dates
    return fig


def movements(months: list[dict[str, Any]], currency: str) -> go.Figure:
    kinds = ("new", "expansion", "reactivation", "contraction", "churn")
    fig = _bars(
        months,
        currency,
        tuple((kind, kind, COLOURS[kind], 1) for kind in kinds),
        ("net", "net", "#212121"),
    )
    return _layout(fig, f"MRR movements by month ({currency})", currency, barmode="relative")


def churn_rates(months: list[dict[str, Any]]) -> go.Figure:
    fig = go.Figure()
    x = [m["month"] for m in months]
    for key, name in (
        ("logo_churn_rate", "logo churn"),
        ("revenue_churn_rate", "revenue churn"),
        ("net_revenue_churn_rate", "net revenue churn"),
    ):
        fig.add_trace(
            go.Scatter(x=x, y=[m.get(key) for m in months], name=name, mode="lines+markers")
        )
    fig = _layout(fig, "Churn rates by month")
    fig.update_yaxes(tickformat=".1%", title_text="share of the month's opening")
    return fig


def churned_mrr(months: list[dict[str, Any]], currency: str) -> go.Figure:
    fig = _bars(
        months,
        currency,
        (
            ("churned_mrr", "churned", COLOURS["churn"], -1),
            ("contraction_mrr", "contraction", COLOURS["contraction"], -1),
            ("expansion_mrr", "expansion", COLOURS["expansion"], 1),
            ("reactivation_mrr", "reactivation", COLOURS["reactivation"], 1),
        ),
    )
    return _layout(fig, f"MRR lost and won back ({currency})", currency, barmode="relative")


def heatmap(cohorts: list[dict[str, Any]], meaning: str) -> go.Figure:
    """Cohorts down, months since first paid across; empty cells where time has not come."""
    width = max(len(r["retention"]) for r in cohorts)
    z = [list(r["retention"]) + [None] * (width - len(r["retention"])) for r in cohorts]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[f"+{n}" for n in range(width)],
            y=[f"{r['cohort']} ({r['customers']})" for r in cohorts],
            colorscale="Blues",
            zmin=0,
            zmax=max(1.0, max((v for row in z for v in row if v is not None), default=1.0)),
            texttemplate="%{z:.0%}",
            hovertemplate="cohort %{y}, month %{x}: %{z:.1%}<extra></extra>",
            colorbar={"tickformat": ".0%"},
        )
    )
    fig = _layout(fig, meaning, hovermode="closest")
    fig.update_yaxes(autorange="reversed", type="category", title_text="cohort (customers)")
    fig.update_xaxes(type="category", title_text="months since first paid")
    return fig


def revenue(months: list[dict[str, Any]], currency: str) -> go.Figure:
    fig = _bars(
        months,
        currency,
        tuple((key, key, COLOURS[key], 1) for key in ("billed", "collected", "recognised")),
        ("deferred_at_end", "deferred at month end", COLOURS["deferred"]),
    )
    return _layout(fig, f"Revenue by month ({currency})", currency, barmode="group")


def renewals(rows: list[dict[str, Any]], currency: str) -> go.Figure:
    by_day: dict[str, int] = {}
    counts: dict[str, int] = {}
    for row in rows:
        day = row["renews_at"][:10]
        by_day[day] = by_day.get(day, 0) + int(row["amount"])
        counts[day] = counts.get(day, 0) + 1
    days = sorted(by_day)
    fig = go.Figure(
        go.Bar(
            x=days,
            y=[_units(by_day[d], currency) for d in days],
            text=[f"{counts[d]}" for d in days],
            name="renewing",
            marker_color=COLOURS["billed"],
        )
    )
    fig = _layout(fig, f"Renewals by day ({currency}; the number on a bar: how many)", currency)
    fig.update_xaxes(type="category")
    return fig


def dunning(rows: list[dict[str, Any]], currency: str) -> go.Figure:
    fig = go.Figure(
        go.Bar(
            x=[_units(r["outstanding"], currency) for r in rows],
            y=[r["customer_id"] for r in rows],
            orientation="h",
            text=[f"{r['attempts']} attempts" for r in rows],
            marker_color=COLOURS["churn"],
            name="outstanding",
        )
    )
    fig = _layout(fig, f"Outstanding in dunning ({currency})", hovermode="closest")
    fig.update_yaxes(type="category", autorange="reversed")
    fig.update_xaxes(title_text=currency, type="linear")
    return fig
