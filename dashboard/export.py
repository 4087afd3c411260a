"""`dashboard --export DIR`: every page in every currency as self-contained HTML (Plotly
inlined, nothing fetched), the CSV behind each figure beside it, links relative."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from dashboard import pages, render


def export(book: pages.Book, directory: Path, exported_at: datetime) -> list[Path]:
    """Write the pages (`mrr-USD.html`, ...; `index.html` is the busiest currency's MRR page)
    and their CSV files under `directory`; the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = f"{exported_at:%Y-%m-%d %H:%M} UTC"
    written: list[Path] = []

    def write(name: str, text: str) -> None:
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)

    with book.lock:
        first = pages.read_query(book, "mrr", {})
        for currency in first.currencies or (first.currency,):
            for name in pages.PAGES:
                query = pages.read_query(book, name, {"currency": currency})
                page = pages.build(book, name, query)
                text = render.html(page, export=stamp)
                write(f"{name}-{currency}.html", text)
                if name == "mrr" and currency == first.currency:
                    write("index.html", text)
                for figure in page.figures:
                    write(render.csv_name(name, currency, figure.id), render.figure_csv(figure))
    return written
