"""The web app: Starlette routes for the pages, their CSV files and the static scripts, behind
a token gate when a token is set; served by uvicorn on a socket bound here."""

from __future__ import annotations

import hashlib
import hmac
import socket
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from dashboard import pages, render
from domain.errors import InvalidInput

COOKIE = "subledger_dashboard"
ASSETS = {
    "plotly.min.js": "text/javascript; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
SECURITY_HEADERS = {
    # our scripts only (figures are JSON data blocks, drawn by static/dashboard.js); Plotly
    # sets inline styles; nothing is fetched from anywhere else
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'"
    " 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def _error(message: str, status: int) -> PlainTextResponse:
    return PlainTextResponse(f"error: {message}\n", status_code=status)


def create_app(book: pages.Book, token: str | None = None) -> Any:
    """The ASGI app on `book`; with `token`, every request must carry it (see TokenGate)."""

    def built(name: str, request: Request) -> tuple[pages.Query, pages.Page] | Response:
        """The page `name` as the request's query asks for it, or a 400 saying why not."""
        try:
            with book.lock:
                query = pages.read_query(book, name, request.query_params)
                return query, pages.build(book, name, query)
        except InvalidInput as exc:
            return _error(str(exc), 400)

    def page_endpoint(name: str) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            found = built(name, request)
            if isinstance(found, Response):
                return found
            return HTMLResponse(render.html(found[1]), headers={"cache-control": "no-store"})

        return endpoint

    def csv_endpoint(request: Request) -> Response:
        name, figure = request.path_params["page"], request.path_params["figure"]
        if name not in pages.PAGES:
            return _error(f"no page {name[:40]!r}", 404)
        got = built(name, request)
        if isinstance(got, Response):
            return got
        query, page = got
        found = [f for f in page.figures if f.id == figure]
        if not found:
            return _error(f"page {name} has no figure {figure[:40]!r}", 404)
        filename = render.csv_name(name, query.currency, figure)
        return Response(
            render.figure_csv(found[0]),
            media_type="text/csv; charset=utf-8",
            headers={
                "content-disposition": f'attachment; filename="{filename}"',
                "cache-control": "no-store",
            },
        )

    def asset_endpoint(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            return _error("not found", 404)
        return Response(
            render.asset(name),
            media_type=ASSETS[name],
            headers={"cache-control": "private, max-age=3600"},
        )

    def favicon(request: Request) -> Response:
        return Response(status_code=204)

    routes = [Route("/", page_endpoint("mrr"))]
    routes += [Route(f"/{name}", page_endpoint(name)) for name in pages.PAGES if name != "mrr"]
    routes += [
        Route("/csv/{page}/{figure}.csv", csv_endpoint),
        Route("/static/{name}", asset_endpoint),
        Route("/favicon.ico", favicon),
    ]
    return TokenGate(Starlette(routes=routes), token)


def _same(given: str, expected: str) -> bool:
    """Constant time, whatever the lengths' difference says."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class TokenGate:
    """ASGI middleware: the security headers on every response and, with a token, the
    check on every request: `Authorization: Bearer <token>`; or `?token=<token>` once, which
    sets an HTTP-only, SameSite=Strict cookie and redirects to the URL without it; or that
    cookie. Anything else: 401. The cookie holds an HMAC of the token, not the token."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.token = token
        self.cookie = (
            hmac.new(token.encode(), b"subledger dashboard cookie", hashlib.sha256).hexdigest()
            if token
            else None
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Mapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        response = self._check(Request(scope))
        if response is None:
            await self.app(scope, receive, send_with_headers)
        else:
            await response(scope, receive, send_with_headers)

    def _check(self, request: Request) -> Response | None:
        """None to let the request through, else the response that answers it."""
        if self.token is None or self.cookie is None:
            return None
        given = request.query_params.getlist("token")
        if given:
            if not all(_same(value, self.token) for value in given):
                return self._refuse()
            kept = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            location = "/" + request.url.path.lstrip("/")  # never `//host`: no open redirect
            if kept:
                location += "?" + urlencode(kept)
            redirect = RedirectResponse(location, status_code=303)
            redirect.set_cookie(COOKIE, self.cookie, httponly=True, samesite="strict", path="/")
            redirect.headers["cache-control"] = "no-store"
            return redirect
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and _same(value.strip(), self.token):
            return None
        if _same(request.cookies.get(COOKIE, ""), self.cookie):
            return None
        return self._refuse()

    @staticmethod
    def _refuse() -> Response:
        return PlainTextResponse(
            "error: unauthorized: send 'Authorization: Bearer <token>', or open a page once"
            " with ?token=<token>\n",
            status_code=401,
            headers={"www-authenticate": 'Bearer realm="subledger dashboard"'},
        )


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on `host`:`port` (0: any free port)."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    return socket.create_server(address[:2], family=family)


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(app: Any, sock: socket.socket) -> None:
    """Run uvicorn on `sock` until SIGINT/SIGTERM; no access log (URLs may carry the token)."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
