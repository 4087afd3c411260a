"""`subledger dashboard` in a real headless browser (Debian's chromium through chromedriver):
one simulated book, one server, one browser for the module.

Every page shows the MRR `report mrr` prints, to the cent, draws every chart (Plotly's SVG
with marks), changes with the currency and the date range, links each figure's CSV and logs
no console error; the token gate refuses what lacks the token; `--export` renders offline.
Screenshots of each page go to build/screenshots/.
"""

from __future__ import annotations

import http.client
import json
import re
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import Select, WebDriverWait
from test_cli import SUBLEDGER, Run, as_json, runner, user_env

from domain.money import format_amount

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
TOKEN = "e2e-dashboard-token-0123456789"
CLOCK = "2025-07-01T00:00:00Z"  # where the simulated book's clock stands
PAGES = {"mrr": "", "churn": "churn", "cohorts": "cohorts", "revenue": "revenue"}
PAGES["renewals"] = "renewals"
# a narrower range per page (renewals look ahead from the book's clock)
RANGES = {name: ("2025-02-01", "2025-03-31") for name in PAGES}
RANGES["renewals"] = ("2025-07-01", "2025-07-10")
FIGURES = {
    "mrr": ["mrr", "waterfall", "movements"],
    "churn": ["churn_rates", "churned_mrr"],
    "cohorts": ["cohorts_customers", "cohorts_revenue"],
    "revenue": ["revenue"],
    "renewals": ["renewals", "dunning"],
}
PLOTS_JS = """return Array.from(document.querySelectorAll('.plot')).map(el => [
    el.id.replace('plot-', ''), el.querySelectorAll('.main-svg').length,
    el.querySelectorAll('.main-svg g.trace path, .main-svg g.trace image, .main-svg g.hm image')
      .length]);"""


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Run]:
    """Six months of 60 simulated customers (USD and EUR), and one customer in dunning."""
    data_dir = tmp_path_factory.mktemp("dashboard") / "data"
    run = runner(data_dir)
    run("simulate", "--customers", "60", "--months", "6", "--format", "json")
    run(
        *("customer", "register", "cus_dunning", "--name", "Dee", "--email", "dee@example.com"),
        *("--payment-token", "tok_chargeDeclined", "--at", CLOCK),
    )
    run("subscribe", "cus_dunning", "pro", "--subscription-id", "sub_dunning", "--at", CLOCK)
    return data_dir, run


@pytest.fixture(scope="module")
def server(book: tuple[Path, Run]) -> Iterator[str]:
    """The dashboard on a free port, with a token (from the environment); its URL."""
    env = user_env() | {"SUBLEDGER_DASHBOARD_TOKEN": TOKEN}
    proc = subprocess.Popen(
        [SUBLEDGER, "--data-dir", str(book[0]), "dashboard", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready and proc.stdout else ""
        found = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert found, f"no URL: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
        assert "token required" in line and TOKEN not in line
        yield found.group()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1300,1800",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def signed_in(browser: Any, server: str) -> Any:
    """The browser after `?token=` once: the cookie is set, the URL no longer has it."""
    browser.get(f"{server}churn?currency=USD&token={TOKEN}")
    assert browser.current_url == f"{server}churn?currency=USD"
    (cookie,) = browser.get_cookies()
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert TOKEN not in cookie["value"]  # an HMAC of the token, not the token
    assert browser.find_element("id", "headline-mrr")
    return browser


def get(url: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    """One request, redirects not followed."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    response.body = response.read()  # type: ignore[attr-defined]
    conn.close()
    return response


BEARER = {"Authorization": f"Bearer {TOKEN}"}


def severe(browser: Any) -> list[str]:
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def plots(browser: Any) -> dict[str, tuple[int, int]]:
    """Each chart's (Plotly SVG layers, marks drawn), once every chart has drawn."""

    def drawn(driver: Any) -> Any:
        found = driver.execute_script(PLOTS_JS)
        return found if found and all(svg and marks for _, svg, marks in found) else False

    try:
        found = WebDriverWait(browser, 20, poll_frequency=0.1).until(drawn)
    except Exception:
        found = browser.execute_script(PLOTS_JS)
    return {name: (svg, marks) for name, svg, marks in found}


def figures_json(browser: Any) -> list[str]:
    script = "return Array.from(document.querySelectorAll('script[data-figure]'))"
    return browser.execute_script(script + ".map(e => e.textContent)")


def headline(browser: Any) -> tuple[int, str, str]:
    element = browser.find_element("id", "headline-mrr")
    return (
        int(element.get_attribute("data-mrr")),
        element.get_attribute("data-currency"),
        element.text,
    )


REPORTS: dict[tuple[Run, str | None], dict[str, Any]] = {}


def report_mrr(run: Run, currency: str, at: str | None = None) -> int:
    """`report mrr [--at AT] --format json`'s MRR in `currency` (each run once a module)."""
    if (run, at) not in REPORTS:
        args = ("report", "mrr", "--format", "json", *(("--at", at) if at else ()))
        REPORTS[(run, at)] = as_json(run(*args))
    return REPORTS[(run, at)][currency]["mrr"]


# ---- the token gate ----------------------------------------------------------------------


def test_without_the_token_every_request_is_refused(server: str) -> None:
    for path in ("", "churn", "static/plotly.min.js", "csv/mrr/mrr.csv", "nowhere"):
        assert get(server + path).status == 401, path
        assert get(server + path, {"Authorization": "Bearer wrong-token-0123456789"}).status == 401
        assert get(server + path, {"Cookie": f"subledger_dashboard={TOKEN}"}).status == 401
    refused = get(f"{server}?token=not-the-token")
    assert refused.status == 401 and b"unauthorized" in refused.body  # type: ignore[attr-defined]
    assert refused.getheader("set-cookie") is None


def test_bearer_works_and_token_in_the_url_sets_a_strict_http_only_cookie(server: str) -> None:
    for path in ("", "static/plotly.min.js", "csv/mrr/mrr.csv?currency=USD"):
        assert get(server + path, BEARER).status == 200, path
    answer = get(f"{server}revenue?currency=EUR&token={TOKEN}&from=2025-02-01")
    assert answer.status == 303
    assert answer.getheader("location") == "/revenue?currency=EUR&from=2025-02-01"
    cookie = answer.getheader("set-cookie") or ""
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
    page = get(f"{server}revenue?currency=EUR", {"Cookie": cookie.split(";")[0]})
    assert page.status == 200 and b'data-currency="EUR"' in page.body  # type: ignore[attr-defined]
    assert "script-src 'self'" in (page.getheader("content-security-policy") or "")


# ---- every page ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", PAGES)
def test_page_shows_the_reported_mrr_and_draws_every_chart(
    signed_in: Any, server: str, book: tuple[Path, Run], name: str
) -> None:
    browser, run = signed_in, book[1]
    browser.get(server + PAGES[name])
    mrr, currency, text = headline(browser)
    assert currency == "USD"  # the busiest currency first
    assert mrr == report_mrr(run, "USD") > 0
    assert text == f"{format_amount(mrr, 'USD')} USD"
    drawn = plots(browser)
    assert sorted(drawn) == sorted(FIGURES[name])
    assert all(svg > 0 and marks > 0 for svg, marks in drawn.values()), drawn
    for figure in FIGURES[name]:  # each figure links the CSV behind it
        link = browser.find_element("id", f"csv-{figure}").get_attribute("href")
        csv = get(link, BEARER)
        assert csv.status == 200 and csv.getheader("content-type").startswith("text/csv")
        rows = csv.body.decode().splitlines()  # type: ignore[attr-defined]
        section = browser.find_element("id", f"figure-{figure}")
        assert len(rows) - 1 == int(section.get_attribute("data-rows")) > 0
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / f"{name}.png"))
    assert severe(browser) == []


@pytest.mark.parametrize("name", PAGES)
def test_currency_and_date_range_change_the_figures(
    signed_in: Any, server: str, book: tuple[Path, Run], name: str
) -> None:
    browser, run = signed_in, book[1]
    browser.get(server + PAGES[name])
    usd = figures_json(browser)
    Select(browser.find_element("id", "currency")).select_by_value("EUR")  # submits itself
    WebDriverWait(browser, 20, poll_frequency=0.1).until(lambda d: "currency=EUR" in d.current_url)
    mrr, currency, _ = headline(browser)
    assert (currency, mrr) == ("EUR", report_mrr(run, "EUR"))
    assert figures_json(browser) != usd
    first, last = RANGES[name]
    browser.execute_script(
        "document.getElementById('from').value = arguments[0];"
        "document.getElementById('to').value = arguments[1];",
        first,
        last,
    )
    browser.find_element("id", "apply").click()
    WebDriverWait(browser, 20, poll_frequency=0.1).until(lambda d: f"to={last}" in d.current_url)
    mrr, currency, _ = headline(browser)
    assert (currency, mrr) == ("EUR", report_mrr(run, "EUR", f"{last}T23:59:59Z"))
    browser.get(f"{server}{PAGES[name]}?currency=USD&from={first}&to={last}")
    assert headline(browser)[0] == report_mrr(run, "USD", f"{last}T23:59:59Z")
    assert figures_json(browser) != usd
    assert all(svg > 0 for svg, _ in plots(browser).values())
    assert severe(browser) == []


def test_figures_are_the_reports_to_the_cent(server: str, book: tuple[Path, Run]) -> None:
    run = book[1]
    csv = get(f"{server}csv/mrr/mrr.csv?currency=USD&from=2025-01-01&to=2025-06-30", BEARER)
    rows = [line.split(",") for line in csv.body.decode().splitlines()]  # type: ignore[attr-defined]
    assert rows[0][:3] == ["month", "mrr", "arr"] and len(rows) == 7
    for month, end in (("2025-02", "2025-02-28"), ("2025-06", "2025-06-30")):
        (row,) = [r for r in rows if r[0] == month]
        assert int(row[1]) == report_mrr(run, "USD", f"{end}T23:59:59Z")
    window = "currency=USD&from=2025-07-01&to=2025-07-10"
    csv = get(f"{server}csv/renewals/renewals.csv?{window}", BEARER)
    lines = csv.body.decode().splitlines()  # type: ignore[attr-defined]
    header = lines[0].split(",")
    shown = {
        (r[header.index("subscription_id")], int(r[header.index("amount")]))
        for r in (line.split(",") for line in lines[1:])
    }
    reported = as_json(
        run("report", "renewals", "--at", CLOCK, "--within", "10d", "--format", "json")
    )
    assert shown == {
        (r["subscription_id"], r["amount"]) for r in reported["renewals"] if r["currency"] == "USD"
    }
    assert shown
    page = get(f"{server}renewals?currency=USD", BEARER).body.decode()  # type: ignore[attr-defined]
    assert "cus_dunning" in page and "sub_dunning" in page
    bad = get(f"{server}churn?currency=USD&from=2025-13-01", BEARER)
    assert bad.status == 400 and bad.body.decode().startswith("error: from:")  # type: ignore[attr-defined]
    assert get(f"{server}churn?currency=XYZ", BEARER).status == 400


# ---- export, and the CLI's refusals ---------------------------------------------------------


def test_export_writes_pages_that_render_offline(
    browser: Any, book: tuple[Path, Run], tmp_path: Path
) -> None:
    run = book[1]
    out = run("dashboard", "--export", str(tmp_path / "board"))
    assert out.stdout.startswith("wrote ")
    files = {p.name for p in (tmp_path / "board").iterdir()}
    for name in PAGES:
        assert {f"{name}-USD.html", f"{name}-EUR.html"} <= files
        assert {f"{name}-USD-{figure}.csv" for figure in FIGURES[name]} <= files
    for name in PAGES:
        browser.get((tmp_path / "board" / f"{name}-USD.html").as_uri())
        assert headline(browser)[:2] == (report_mrr(run, "USD"), "USD")
        drawn = plots(browser)
        assert drawn and all(svg > 0 and marks > 0 for svg, marks in drawn.values()), drawn
        link = browser.find_element("id", f"csv-{FIGURES[name][0]}").get_attribute("href")
        assert link == (tmp_path / "board" / f"{name}-USD-{FIGURES[name][0]}.csv").as_uri()
        assert severe(browser) == []
    html = (tmp_path / "board" / "index.html").read_text()
    assert "<script src=" not in html and 'href="churn-USD.html"' in html
    browser.get((tmp_path / "board" / "index.html").as_uri())
    browser.save_screenshot(str(SHOTS / "export-index.png"))


def test_listening_beyond_loopback_needs_a_token(book: tuple[Path, Run]) -> None:
    run = book[1]
    for args in (("--host", "0.0.0.0"), ("--host", "::", "--port", "0")):
        refused = run("dashboard", *args, check=False)
        assert refused.returncode != 0 and refused.stdout == ""
        assert refused.stderr.count("\n") == 1 and refused.stderr.startswith("error: ")
        assert "needs a token" in refused.stderr
    short = run("dashboard", "--host", "0.0.0.0", "--token", "short", check=False)
    assert short.returncode != 0 and "at least 16 characters" in short.stderr


def test_the_rest_of_the_cli_never_loads_the_web_stack() -> None:
    code = "import sys, cli; print(json.dumps(sorted(m for m in ('starlette', 'uvicorn', "
    code += "'plotly', 'dashboard') if m in sys.modules)))"
    proc = subprocess.run(
        [sys.executable, "-c", f"import json; {code}"], capture_output=True, text=True, check=True
    )
    assert json.loads(proc.stdout) == []
