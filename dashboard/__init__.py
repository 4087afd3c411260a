"""`subledger dashboard`: a read-only web app on the read models (Starlette + uvicorn, charts
by Plotly's bundled JS), and its static export.

pages (what each page shows, read through projections.reports/series/finance), charts
(the Plotly figures), render (HTML and CSV), web (the app and its token gate), export.
Only the `dashboard` command imports this package, so the rest of the CLI never loads
starlette, uvicorn or plotly.
"""
