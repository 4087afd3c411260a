"""Charts in the terminal: `report mrr --chart` and `report movements --chart`.

Bars are drawn with block characters at eighth-of-a-cell resolution, one row per month, so
a chart stays compact and reads in any terminal (and in a pipe, without colour). Amounts
arrive as integer minor units and are formatted only in the labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from domain.money import format_amount

WIDTH = 40  # cells of the longest bar
_EIGHTHS = " ▏▎▍▌▋▊▉"

# What each movement kind adds to MRR, and its colour: gains right of the axis, losses left.
GAINS = (("new", "green"), ("expansion", "cyan"), ("reactivation", "blue"))
LOSSES = (("contraction", "yellow"), ("churn", "red"))


def _cells(value: int, scale: int, width: int) -> float:
    return 0.0 if scale <= 0 else abs(value) * width / scale


def bar(cells: float) -> str:
    """A bar `cells` long: whole blocks, then one partial block (eighths)."""
    whole = int(cells)
    part = round((cells - whole) * 8)
    if part == 8:
        whole, part = whole + 1, 0
    return "█" * whole + (_EIGHTHS[part] if part else "")


def _stack(parts: Sequence[tuple[int, str]], scale: int, width: int) -> Text:
    """Segments side by side, each as long as its share; rounded on the running total so the
    whole bar is exactly as long as the sum of its parts."""
    text = Text()
    drawn = 0.0
    running = 0
    for value, style in parts:
        running += abs(value)
        end = _cells(running, scale, width)
        text.append(bar(end - drawn) if end > drawn else "", style=style)
        drawn = end
    return text


def mrr_chart(currency: str, points: Sequence[tuple[str, int]]) -> RenderableType:
    """MRR at each month's end: one bar per month, the amount beside it."""
    top = max((value for _, value in points), default=0)
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True, min_width=WIDTH)
    grid.add_column(justify="right", no_wrap=True)
    for month, value in points:
        grid.add_row(
            month, Text(bar(_cells(value, top, WIDTH)), style="green"), _money(value, currency)
        )
    title = Text(f"MRR {currency}, at each month's end", style="bold")
    return Group(title, grid, Text())


def movements_chart(currency: str, months: Sequence[tuple[str, dict[str, int]]]) -> RenderableType:
    """MRR movements by month: losses left of the axis, gains right, the net beside them."""
    half = WIDTH // 2
    scale = max(
        (
            max(sum(abs(m.get(k, 0)) for k, _ in LOSSES), sum(m.get(k, 0) for k, _ in GAINS))
            for _, m in months
        ),
        default=0,
    )
    grid = Table.grid(padding=(0, 0))
    grid.add_column(no_wrap=True)
    grid.add_column(justify="right", no_wrap=True, min_width=half + 1)
    grid.add_column(no_wrap=True, min_width=half + 1)
    grid.add_column(justify="right", no_wrap=True)
    for month, moved in months:
        losses = _stack([(moved.get(k, 0), s) for k, s in reversed(LOSSES)], scale, half)
        gains = _stack([(moved.get(k, 0), s) for k, s in GAINS], scale, half)
        net = sum(moved.get(k, 0) for k, _ in (*GAINS, *LOSSES))
        grid.add_row(
            f"{month} ", losses, Text("│").append_text(gains), f" net {_money(net, currency)}"
        )
    legend = Text("  ")
    for kind, style in (*GAINS, *LOSSES):
        legend.append("█ ", style=style).append(f"{kind}  ")
    title = Text(f"MRR movements {currency}, by month", style="bold")
    return Group(title, grid, legend, Text())


def _money(minor: int, currency: str) -> str:
    return f"{format_amount(minor, currency)} {currency}"


def render(console: Any, charts: Sequence[RenderableType]) -> None:
    for chart in charts:
        console.print(chart)
