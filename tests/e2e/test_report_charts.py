"""`report mrr --chart` and `report movements --chart`: bars a person reads, drawn from the
same figures `--format json` gives (checked month by month, to the cent)."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.e2e.test_cli import as_json, runner
from verbs import charts


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    run = runner(tmp_path_factory.mktemp("charts"))
    run("simulate", "--customers", "30", "--months", "5", "--seed", "7")
    return run


def _rows(text: str) -> dict[str, tuple[str, str]]:
    """month -> (bar, amount) from a chart's rows."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(\d{4}-\d{2}) (.*?)\s+(-?[\d.]+) (\w{3})$", line)
        if m:
            out[m.group(1)] = (m.group(2).strip(), m.group(3))
    return out


def _next_first(month: str) -> date:
    year, mon = int(month[:4]), int(month[5:])
    return date(year + mon // 12, mon % 12 + 1, 1)


def _last_second(month: str) -> str:
    """`2025-02` -> `2025-02-28T23:59:59Z`: the instant a month-end figure is taken at."""
    return f"{_next_first(month) - timedelta(days=1):%Y-%m-%d}T23:59:59Z"


def test_mrr_chart_shows_each_month_end_as_report_mrr_has_it(run) -> None:
    text = run("report", "mrr", "--chart", "--months", "3").stdout
    rows = _rows(text)
    assert len(rows) == 3, text
    biggest = max(rows.values(), key=lambda r: float(r[1]))
    assert biggest[0] == "█" * charts.WIDTH  # the largest month fills the width
    for month, (_, amount) in rows.items():
        figures = as_json(run("report", "mrr", "--at", _last_second(month), "--format", "json"))
        assert int(amount.replace(".", "")) == figures["USD"]["mrr"]


def test_movements_chart_nets_match_report_movements(run) -> None:
    text = run(
        "report", "movements", "--from", "2025-01-01", "--to", "2025-06-01", "--chart"
    ).stdout
    nets = dict(re.findall(r"^(\d{4}-\d{2}) .* net (-?[\d.]+) USD$", text, flags=re.M))
    assert len(nets) == 5, text
    for month, net in nets.items():
        window = ("--from", f"{month}-01", "--to", f"{_next_first(month)}")
        moved = as_json(run("report", "movements", *window, "--format", "json"))
        assert int(net.replace(".", "")) == moved.get("USD", {}).get("net", 0)
    assert "new" in text and "churn" in text  # the legend


def test_chart_is_for_tables_only(run) -> None:
    proc = run("report", "mrr", "--chart", "--format", "json", check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        "error: --chart draws for people; leave out --format json/csv"
    ]


def test_bars_are_exact_to_an_eighth() -> None:
    assert charts.bar(0) == ""
    assert charts.bar(2.5) == "██▌"
    assert charts.bar(1.99) == "██"
    assert charts.bar(0.125) == "▏"


def test_a_stacked_bar_is_as_long_as_its_parts(tmp_path: Path) -> None:
    from rich.console import Console

    chart = charts.movements_chart(
        "USD", [("2025-01", {"new": 300, "expansion": 100, "churn": -60, "contraction": -40})]
    )
    console = Console(width=120, record=True, color_system=None)
    console.print(chart)
    line = next(x for x in console.export_text().splitlines() if x.startswith("2025-01"))
    left, right = line.split("│")
    assert left.count("█") == 5 and right.count("█") == 20  # half width = the 400 gained
    assert line.endswith("net 3.00 USD")
