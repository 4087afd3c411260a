"""A page as HTML (jinja2, autoescaped) and a figure as CSV, with the links of one of two
worlds: the web app's URLs (query parameters) or the export's files (relative names)."""

from __future__ import annotations

import csv
import io
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from dashboard.charts import money
from dashboard.pages import PAGES, SECOND, Figure, Page
from verbs.exports import csv_cell
from verbs.render import AMOUNT_COLUMNS


class WebLinks:
    """Relative URLs: every page sits at the root, so they work behind a path prefix too."""

    def __init__(self, page: Page) -> None:
        self.query = page.query

    def page(self, name: str, bare: bool = False, **overrides: str) -> str:
        path = "./" if name == "mrr" else name
        return path if bare else f"{path}?{urlencode(self.query.params(**overrides))}"

    def csv(self, page: str, figure: str) -> str:
        return f"csv/{page}/{figure}.csv?{urlencode(self.query.params())}"

    def asset(self, name: str) -> str:
        return f"static/{name}"


class FileLinks:
    """The export's files side by side: `churn-USD.html`, `churn-USD-churn_rates.csv`."""

    def __init__(self, page: Page) -> None:
        self.query = page.query

    def page(self, name: str, bare: bool = False, currency: str | None = None) -> str:
        return f"{name}-{currency or self.query.currency}.html"

    def csv(self, page: str, figure: str) -> str:
        return csv_name(page, self.query.currency, figure)

    def asset(self, name: str) -> str:
        return name


def csv_name(page: str, currency: str, figure: str) -> str:
    return f"{page}-{currency}-{figure}.csv"


@cache
def asset(name: str) -> str:
    """A file of the package's `static/` (plotly.min.js: Plotly's own bundled copy)."""
    if name == "plotly.min.js":
        from plotly.offline import get_plotlyjs

        return get_plotlyjs()
    return resources.files("dashboard").joinpath("static", name).read_text(encoding="utf-8")


@cache
def _template() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("dashboard", "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
    )
    return env.get_template("page.html")


def _inline(text: str) -> str:
    """Script text safe inside <script>: it cannot close the element early."""
    return text.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT")


def html(page: Page, *, export: str | None = None) -> str:
    """The page; `export` (a time) makes it self-contained: styles, Plotly and our script
    inline, links to the files beside it."""
    links: WebLinks | FileLinks = FileLinks(page) if export else WebLinks(page)
    inline = None
    if export:
        inline = {
            "css": asset("dashboard.css").replace("</style", "<\\/style"),
            "plotly": _inline(asset("plotly.min.js")),
            "js": _inline(asset("dashboard.js")),
        }
    figures = [
        {
            "id": f.id,
            "title": f.title,
            "columns": f.columns,
            "rows": f.rows,
            "table": f.table,
            "note": f.note,
            "json": f.chart.to_json() if f.chart is not None else None,
        }
        for f in page.figures
    ]
    return _template().render(
        page=page,
        q=page.query,
        pages=PAGES,
        links=links,
        inline=inline,
        exported=export,
        figures=figures,
        headline=page.headline,
        at=f"{page.query.end - SECOND:%Y-%m-%dT%H:%M:%SZ}",
        money=lambda minor: money(minor, page.query.currency),
        amounts=AMOUNT_COLUMNS,
    )


def figure_csv(figure: Figure) -> str:
    """The rows behind a chart (minor units), cells as `export` writes them: no spreadsheet
    runs them as formulas, no terminal obeys them."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(figure.columns)
    for row in figure.rows:
        values = [row.get(column) for column in figure.columns]
        writer.writerow([csv_cell(v) for v in values])
    return buffer.getvalue()
