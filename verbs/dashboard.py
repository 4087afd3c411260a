"""`subledger dashboard`: the read-only web dashboard, or its static export.

starlette, uvicorn and plotly are imported inside the command only: the rest of the CLI
never pays for them.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import click

from domain.errors import InvalidInput
from verbs.app import App

TOKEN_ENV = "SUBLEDGER_DASHBOARD_TOKEN"
MIN_TOKEN = 16


def loopback(host: str) -> bool:
    """Whether every address `host` names is a loopback one (127.0.0.0/8, ::1)."""
    if not host:
        return False  # "" binds every interface
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise InvalidInput(f"--host: cannot resolve {host[:80]!r}") from None
    try:
        return all(ipaddress.ip_address(str(i[4][0]).split("%")[0]).is_loopback for i in infos)
    except ValueError:
        return False


def check_token(token: str) -> str:
    if len(token) < MIN_TOKEN:
        raise InvalidInput(f"the dashboard token must be at least {MIN_TOKEN} characters")
    if not token.isprintable() or any(ch.isspace() for ch in token) or not token.isascii():
        raise InvalidInput("the dashboard token must be printable ASCII without spaces")
    return token


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8050,
    show_default=True,
    help="Port to listen on (0: any free one; the URL is printed).",
)
@click.option(
    "--token",
    help=f"Required on every request (default ${TOKEN_ENV}; needed to listen beyond"
    " loopback): 'Authorization: Bearer TOKEN', or ?token=TOKEN once (sets a cookie).",
)
@click.option(
    "--export",
    "export_dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Write every page as self-contained HTML (with its CSV files) into DIR, and exit.",
)
@click.pass_obj
def dashboard(app: App, host: str, port: int, token: str | None, export_dir: Path | None) -> None:
    """A read-only web dashboard: MRR and movements, churn, cohorts, revenue (recognised
    and deferred), renewals and dunning; a currency switch, a date range, every figure's CSV.

    Listens on 127.0.0.1 by default; any other address needs a token. Plotly's JS is
    served from the installed package: the pages fetch nothing from elsewhere.
    """
    token = token if token is not None else os.environ.get(TOKEN_ENV) or None
    if token is not None:
        check_token(token)
    if export_dir is None and not loopback(host) and token is None:
        raise InvalidInput(
            f"--host {host}: listening beyond loopback needs a token (--token or ${TOKEN_ENV})"
        )
    from dashboard import pages
    from projections import finance

    runtime = app.runtime
    book = pages.Book(
        runtime.db,
        lambda: runtime.ledger.clock_now() or runtime.clock(),
        finance.ledger_pricer(runtime.ledger),
    )
    if export_dir is not None:
        from dashboard.export import export

        written = export(book, export_dir, runtime.clock())
        click.echo(f"wrote {len(written)} files to {export_dir} (open index.html)")
        return
    from dashboard import web

    try:
        sock = web.listen(host, port)
    except OSError as exc:
        raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    click.echo(
        f"dashboard on {web.url_of(sock)} (read-only{', token required' if token else ''});"
        " Ctrl-C stops it",
    )
    web.serve(web.create_app(book, token), sock)


COMMANDS: list[click.Command] = [dashboard]
