"""bench/run.py's report: issue 13's nested keys, each ratio from its figure and same-run
ceiling, and the targets judged from them (bench/report.py, loaded from its file: bench/
is scripts, not a package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("subledger_bench_report", ROOT / "bench/report.py")
assert _spec is not None and _spec.loader is not None
report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report)

MEASURED: dict[str, dict[str, Any]] = {
    "ingest": {
        "commands_per_s": 1000.0,
        "events_per_s": 5000.0,
        "ceiling_events_per_s": 8000.0,
        "commands": 941,
    },
    "ingest_2_workers": {
        "commands_per_s": 1500.0,
        "events_per_s": 7500.0,
        "ceiling_events_per_s": 8000.0,
    },
    "ledger": {"commands_per_s": 640.0},
    "projections": {
        "events_per_s": 3000.0,
        "ceiling_events_per_s": 34000.0,
        "peer_events_per_s": 900.0,
        "slowest": "billing",
    },
    "replay": {"events_per_s": 20000.0, "ceiling_events_per_s": 30000.0},
    "latency_ms": {"p50": 120.0, "p99": 800.0, "at_commands_per_s": 600.0},
    "simulate": {"seconds": 50.0, "events_per_s": 4000.0, "ceiling_events_per_s": 20000.0},
    "memory_mb": {"worker_1x": 100.0, "worker_10x": 130.0},
}

ISSUE_13_KEYS = {
    "ingest": {"commands_per_s", "events_per_s", "ceiling_events_per_s", "ratio"},
    "ledger": {"commands_per_s"},
    "projections": {"events_per_s", "ceiling_events_per_s", "ratio", "peer_events_per_s"},
    "replay": {"events_per_s", "ceiling_events_per_s", "ratio"},
    "latency_ms": {"p50", "p99", "at_commands_per_s"},
    "simulate": {"seconds", "events_per_s", "ceiling_events_per_s", "ratio"},
    "memory_mb": {"worker_1x", "worker_10x"},
}


def test_every_key_of_issue_13_is_nested_under_its_section() -> None:
    out = report.report(MEASURED)
    for section, keys in ISSUE_13_KEYS.items():
        assert keys <= set(out[section]), section
    assert out["ingest"]["commands"] == 941  # more figures may stand beside them
    assert out["projections"]["slowest"] == "billing"
    assert set(out) == {*ISSUE_13_KEYS, "ingest_2_workers", "targets"}
    assert list(out)[:2] == ["ingest", "ingest_2_workers"]  # scale-out beside the one worker


def test_each_ratio_is_its_figure_over_its_same_run_ceiling() -> None:
    out = report.report(MEASURED)
    assert out["ingest"]["ratio"] == 0.625
    assert out["ingest_2_workers"]["ratio"] == 0.938  # 7500 / 8000, to three places
    assert out["projections"]["ratio"] == 0.088
    assert out["replay"]["ratio"] == 0.667
    assert out["simulate"]["ratio"] == 0.2


def test_a_measured_ratio_is_never_taken_from_the_input() -> None:
    forged = {"replay": {"events_per_s": 10.0, "ceiling_events_per_s": 100.0, "ratio": 0.9}}
    assert report.report(forged)["replay"]["ratio"] == 0.1


@pytest.mark.parametrize(
    ("value", "ceiling", "expected"),
    [(1.0, 0.0, None), (None, 5.0, None), (5.0, None, None), (1.0, 3.0, 0.333)],
)
def test_a_ratio_without_a_ceiling_is_null(value: Any, ceiling: Any, expected: Any) -> None:
    assert report.ratio(value, ceiling) == expected


def test_targets_are_judged_from_the_figures() -> None:
    targets = report.report(MEASURED)["targets"]
    assert targets == {
        "ingest.ratio>=0.5": True,
        "projections.ratio>=0.5": False,
        "replay.ratio>=0.5": True,
        "simulate.ratio>=0.25": False,
        "projections.events_per_s>peer": True,
        "latency_ms.p99<=1000": True,
        "latency_ms.at_commands_per_s>=ingest/2": True,  # 600 >= 1000 / 2
        "memory_mb.worker_10x<=1.2x": False,  # 130 > 120
    }


def test_a_subset_reports_only_what_it_measured() -> None:
    out = report.report({"simulate": MEASURED["simulate"]})
    assert set(out) == {"simulate", "targets"}
    assert out["targets"] == {"simulate.ratio>=0.25": False}


def test_a_missing_figure_is_null_not_dropped() -> None:
    out = report.report({"latency_ms": {"p50": 3.0}})
    assert out["latency_ms"] == {"p50": 3.0, "p99": None, "at_commands_per_s": None}
    assert out["targets"] == {}


def test_the_table_shows_every_figure_and_target() -> None:
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(report.table(report.report(MEASURED)))
    text = console.export_text()
    assert "ingest.ratio" in text and "0.625" in text and "memory_mb.worker_10x" in text
    assert "target memory_mb.worker_10x<=1.2x" in text and "NO" in text
