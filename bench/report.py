"""The benchmark's report: the measured figures in issue 13's nested shape, each ratio
against its same-run ceiling, and which targets hold. Pure: no services, no project code,
so a unit test pins the shape (tests/unit/test_bench_report.py)."""

from __future__ import annotations

from typing import Any

# section -> the keys issue 13 names, in its order
KEYS: dict[str, tuple[str, ...]] = {
    "ingest": ("commands_per_s", "events_per_s", "ceiling_events_per_s", "ratio"),
    "ledger": ("commands_per_s",),
    "projections": ("events_per_s", "ceiling_events_per_s", "ratio", "peer_events_per_s"),
    "replay": ("events_per_s", "ceiling_events_per_s", "ratio"),
    "latency_ms": ("p50", "p99", "at_commands_per_s"),
    "simulate": ("seconds", "events_per_s", "ceiling_events_per_s", "ratio"),
    "memory_mb": ("worker_1x", "worker_10x"),
}
# reported beside `ingest`, not targeted: the pipeline with two command-worker processes
SCALE_OUT = "ingest_2_workers"
RATIOS = ("ingest", SCALE_OUT, "projections", "replay", "simulate")


def ratio(value: float | None, ceiling: float | None) -> float | None:
    """value / ceiling to three places; None when either is missing or the ceiling is 0."""
    if value is None or not ceiling:
        return None
    return round(value / ceiling, 3)


def targets(out: dict[str, dict[str, Any]]) -> dict[str, bool]:
    """Issue 13's targets, for the figures this run measured."""
    got: dict[str, bool] = {}

    def at(section: str, key: str) -> Any:
        return out.get(section, {}).get(key)

    for section, floor in (("ingest", 0.5), ("projections", 0.5), ("replay", 0.5)):
        if at(section, "ratio") is not None:
            got[f"{section}.ratio>={floor}"] = at(section, "ratio") >= floor
    if at("simulate", "ratio") is not None:
        got["simulate.ratio>=0.25"] = at("simulate", "ratio") >= 0.25
    mine, peer = at("projections", "events_per_s"), at("projections", "peer_events_per_s")
    if mine is not None and peer is not None:
        got["projections.events_per_s>peer"] = mine > peer
    if at("latency_ms", "p99") is not None:
        got["latency_ms.p99<=1000"] = at("latency_ms", "p99") <= 1000
        if at("ingest", "commands_per_s"):
            half = at("ingest", "commands_per_s") / 2
            got["latency_ms.at_commands_per_s>=ingest/2"] = (
                at("latency_ms", "at_commands_per_s") >= half
            )
    one, ten = at("memory_mb", "worker_1x"), at("memory_mb", "worker_10x")
    if one and ten is not None:
        got["memory_mb.worker_10x<=1.2x"] = ten <= 1.2 * one
    return got


def report(measured: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Issue 13's keys (sections measured only; a missing figure is null), extra figures
    beside them, every ratio computed here from its figure and ceiling, and `targets`."""
    out: dict[str, Any] = {}
    order = ["ingest", SCALE_OUT, *(s for s in KEYS if s != "ingest")]
    for section in [*order, *(s for s in measured if s not in order)]:
        if section not in measured or section == "targets":
            continue
        figures = dict(measured[section])
        keys = KEYS.get(section, KEYS["ingest"] if section == SCALE_OUT else ())
        row: dict[str, Any] = {key: figures.pop(key, None) for key in keys}
        if section in RATIOS:
            row["ratio"] = ratio(row["events_per_s"], row["ceiling_events_per_s"])
        row.update(figures)  # beside the named keys
        out[section] = row
    out["targets"] = targets(out)
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    return "-" if value is None else str(value)


def table(result: dict[str, Any]) -> Any:
    """The report as a rich table: one row per figure."""
    from rich.table import Table

    grid = Table(title="subledger bench (ratios against ceilings measured in this run)")
    grid.add_column("figure")
    grid.add_column("value", justify="right")
    for section, figures in result.items():
        if section == "targets":
            continue
        for key, value in figures.items():
            grid.add_row(f"{section}.{key}", _fmt(value))
    for name, held in result.get("targets", {}).items():
        grid.add_row(f"target {name}", _fmt(held))
    return grid
