"""The CLI's output: user text is data (never markup, never terminal control), amounts are
minor units for machines and formatted for people, and errors are one line in plain words."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import psycopg2
import pytest
from eventsourcing.persistence import OperationalError as StoreOperationalError
from kafka.errors import KafkaConnectionError, KafkaTimeoutError
from ledger_support import Book, T, flat

from bootstrap import Config
from domain import commands as c
from projections import reports
from verbs import errors, reads, render

HOSTILE = [
    "Pro [/bold] plan",
    "[bold]loud[/bold]",
    "s[/]x",
    "[link=https://evil.example]click[/link]",
    ":smile: [red]",
]


def table(capsys: pytest.CaptureFixture[str], data, **kwargs) -> str:
    render.show(data, "table", **kwargs)
    return capsys.readouterr().out


def csv_rows(capsys: pytest.CaptureFixture[str], data, **kwargs) -> list[list[str]]:
    render.show(data, "csv", **kwargs)
    return list(csv.reader(io.StringIO(capsys.readouterr().out)))


def json_of(capsys: pytest.CaptureFixture[str], data, **kwargs) -> tuple[str, object]:
    render.show(data, "json", **kwargs)
    out = capsys.readouterr().out
    return out, json.loads(out)


# ---- markup ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE)
def test_markup_in_user_text_prints_literally_in_a_table(capsys, text: str) -> None:
    out = table(capsys, [{"plan_id": "p1", "name": text}], title=text)
    assert out.count(text) == 2  # the cell and the title, character for character


@pytest.mark.parametrize("text", HOSTILE)
def test_markup_in_a_record_and_in_keyed_rows_prints_literally(capsys, text: str) -> None:
    assert text in table(capsys, {"subscription_id": text, "status": "active"})
    assert text in table(capsys, {text: {"mrr": 1}}, key="currency")


@pytest.mark.parametrize("text", HOSTILE)
def test_markup_in_user_text_is_unchanged_in_csv_and_json(capsys, text: str) -> None:
    assert csv_rows(capsys, [{"name": text}]) == [["name"], [text]]
    assert json_of(capsys, [{"name": text}])[1] == [{"name": text}]


# ---- control characters, bidi, newlines -------------------------------------------------------

CONTROLS = {
    "a\x1b[31mred": "a\\x1b[31mred",
    "bell\x07": "bell\\x07",
    "nul\x00": "nul\\x00",
    "del\x7f": "del\\x7f",
    "c1\x85\x9b": "c1\\x85\\x9b",
    "one\ntwo": "one\\ntwo",
    "cr\rtab\t": "cr\\rtab\\t",
    "abc\u202eevil": "abc\\u202eevil",
    "iso\u2066x\u2069": "iso\\u2066x\\u2069",
    "mark\u200e\u200f\u061c": "mark\\u200e\\u200f\\u061c",
}


@pytest.mark.parametrize(("raw", "shown"), CONTROLS.items())
def test_control_and_bidi_characters_are_shown_escaped_in_a_table(capsys, raw, shown) -> None:
    out = table(capsys, [{"name": raw}])
    assert shown in out
    assert not any(ch in out for ch in raw if ch not in "\n" and not ch.isprintable())
    assert len(out.splitlines()) == 5  # top, header, rule, ONE row, bottom: no line break


@pytest.mark.parametrize(("raw", "shown"), CONTROLS.items())
def test_control_and_bidi_characters_are_shown_escaped_in_csv(capsys, raw, shown) -> None:
    assert csv_rows(capsys, [{"name": raw, "n": 1}]) == [["name", "n"], [shown, "1"]]


@pytest.mark.parametrize("raw", CONTROLS)
def test_json_escapes_every_control_and_bidi_character_and_stays_valid(capsys, raw) -> None:
    out, data = json_of(capsys, {"name": raw})
    assert data == {"name": raw}  # the value itself, losslessly
    assert all(ch == "\n" or ch.isprintable() for ch in out)  # only the layout's newlines
    assert not any(ch in out for ch in "\x7f\x85\x9b\u202e\u2066\u2069\u200e\u200f\u061c")


def test_json_keeps_readable_text_unescaped(capsys) -> None:
    out, data = json_of(capsys, {"name": "Zoë · 東京"})
    assert "Zoë · 東京" in out
    assert data == {"name": "Zoë · 東京"}


def test_a_newline_in_a_record_value_stays_on_one_table_line(capsys) -> None:
    out = table(capsys, {"reference": "wire\nfrom bank", "amount": 5})
    line = next(ln for ln in out.splitlines() if "reference" in ln)
    assert "wire\\nfrom bank" in line


def test_control_characters_in_column_names_are_escaped(capsys) -> None:
    out = table(capsys, [{"a\x1bb": 1}])
    assert "a\\x1bb" in out and "\x1b" not in out
    assert csv_rows(capsys, [{"a\x1bb": 1}])[0] == ["a\\x1bb"]


# ---- empty results ------------------------------------------------------------------------


def test_an_empty_result_prints_its_header_in_csv(capsys) -> None:
    render.show([], "csv", columns=reads.INVOICE_COLUMNS)
    assert capsys.readouterr().out == ",".join(reads.INVOICE_COLUMNS) + "\n"


def test_an_empty_report_keyed_by_currency_prints_its_header_in_csv(capsys) -> None:
    render.show({}, "csv", key="currency", columns=reads.MRR_COLUMNS)
    assert capsys.readouterr().out.splitlines() == [",".join(reads.MRR_COLUMNS)]


def test_an_empty_result_is_a_table_with_its_columns_and_an_empty_json_list(capsys) -> None:
    out = table(capsys, [], columns=reads.PAYMENT_COLUMNS)
    for column in reads.PAYMENT_COLUMNS:
        assert column in out
    assert json_of(capsys, [], columns=reads.PAYMENT_COLUMNS)[1] == []


def test_declared_columns_come_first_and_extra_keys_follow(capsys) -> None:
    rows = csv_rows(capsys, [{"b": 2, "a": 1, "z": 3}], columns=("a", "b"))
    assert rows == [["a", "b", "z"], ["1", "2", "3"]]


# ---- amounts ------------------------------------------------------------------------------


def test_csv_amounts_are_minor_units_and_the_table_formats_them(capsys) -> None:
    rows = [
        {"number": "INV-1", "currency": "USD", "total": 1050, "amount_due": -5, "attempts": 1000},
        {"number": "INV-2", "currency": "JPY", "total": 1050, "amount_due": 0, "attempts": 2},
        {"number": "INV-3", "currency": "KWD", "total": 1050, "amount_due": 7, "attempts": 3},
    ]
    assert csv_rows(capsys, rows)[1:] == [
        ["INV-1", "USD", "1050", "-5", "1000"],
        ["INV-2", "JPY", "1050", "0", "2"],
        ["INV-3", "KWD", "1050", "7", "3"],
    ]
    out = table(capsys, rows)
    lines = [ln for ln in out.splitlines() if "INV-" in ln]
    cells = [[c.strip() for c in ln.split("│")[1:-1]] for ln in lines]
    assert cells == [
        ["INV-1", "USD", "10.50", "-0.05", "1000"],  # a count is not an amount
        ["INV-2", "JPY", "1050", "0", "2"],  # no minor unit
        ["INV-3", "KWD", "1.050", "0.007", "3"],  # three decimals
    ]


def test_a_report_keyed_by_currency_has_a_currency_column_and_formats_in_tables(capsys) -> None:
    figures = {"EUR": {"mrr": 5800, "arr": 69600, "paying_customers": 1, "arpu": 5800}}
    assert csv_rows(capsys, figures, key="currency", columns=reads.MRR_COLUMNS)[:2] == [
        list(reads.MRR_COLUMNS),
        ["EUR", "5800", "69600", "1", "5800", ""],
    ]
    out = table(capsys, figures, key="currency", columns=reads.MRR_COLUMNS)
    assert "58.00" in out and "696.00" in out and "5800" not in out


def test_a_record_formats_its_amounts_in_its_own_currency_in_tables_only(capsys) -> None:
    record = {"subscription_id": "s1", "currency": "EUR", "mrr": 5800, "quantity": 12}
    out = table(capsys, record)
    assert "58.00" in out and "12" in out and "5800" not in out
    assert ["mrr", "5800"] in csv_rows(capsys, record)


def test_an_amount_without_a_known_currency_stays_in_minor_units(capsys) -> None:
    out = table(capsys, [{"amount": 1234, "currency": "XXZ"}, {"amount": 99}])
    assert "1234" in out and "99" in out


def test_plan_rows_give_minor_units_or_pricing_json_to_csv_and_prices_to_tables() -> None:
    plans = [
        {"plan_id": "basic", "currency": "USD", "features": ["a,b", "sso"],
         "pricing": {"model": "flat", "amount": 1000, "tiers": []}},
        {"plan_id": "seats", "currency": "EUR", "features": [],
         "pricing": {"model": "tiered", "amount": 0,
                     "tiers": [{"up_to": 10, "unit": 500}, {"up_to": None, "unit": 400}]}},
    ]  # fmt: skip
    assert reads.plan_rows(plans, "json") is plans
    basic, seats = reads.plan_rows(plans, "csv")
    assert (basic["price"], basic["model"], basic["currency"]) == (1000, "flat", "USD")
    assert json.loads(basic["features"]) == ["a,b", "sso"]  # a comma in a feature stays one
    assert json.loads(seats["price"]) == plans[1]["pricing"]
    basic, seats = reads.plan_rows(plans, "table")
    assert (basic["price"], seats["price"], basic["features"]) == (1000, "2 tiers", "a,b,sso")


def test_plan_list_table_shows_the_price_for_people(capsys) -> None:
    rows = reads.plan_rows(
        [{"plan_id": "basic", "currency": "USD", "features": [],
          "pricing": {"model": "flat", "amount": 1000, "tiers": []}}],
        "table",
    )  # fmt: skip
    out = table(capsys, rows, columns=reads.PLAN_COLUMNS)
    assert "10.00" in out and "1000" not in out


def test_cohort_retention_is_a_ratio_in_csv_and_a_percent_in_tables(capsys) -> None:
    cohorts = [{"cohort": "2024-01", "customers": 2, "retention": [1.0, 0.5]}]
    assert reads.cohort_rows(cohorts, "json") is cohorts
    assert csv_rows(capsys, reads.cohort_rows(cohorts, "csv"), columns=reads.COHORT_COLUMNS) == [
        ["cohort", "customers", "m0", "m1"],
        ["2024-01", "2", "1.0", "0.5"],
    ]
    out = table(capsys, reads.cohort_rows(cohorts, "table"), columns=reads.COHORT_COLUMNS)
    assert "100%" in out and "50%" in out


def test_revenue_rows_are_months_then_the_total_per_currency() -> None:
    revenue = {
        "USD": {"billed": 30, "tax": 3, "collected": 20, "written_off": 5, "outstanding": 10,
                "months": {"2024-01": {"billed": 10, "tax": 1, "collected": 10},
                           "2024-02": {"billed": 20, "tax": 2, "collected": 10}}},
    }  # fmt: skip
    rows = reads.revenue_rows(revenue)
    assert [(r["currency"], r["month"], r["billed"]) for r in rows] == [
        ("USD", "2024-01", 10),
        ("USD", "2024-02", 20),
        ("USD", "total", 30),
    ]
    assert rows[-1]["written_off"] == 5


def test_the_declared_columns_cover_every_key_each_read_returns(book: Book) -> None:
    """A key a report adds without a declared column would vanish from an empty CSV."""
    t = T(2024, 1, 1)
    book.plan("basic", t, flat(1000))
    book.plan("trial", t, flat(2000), trial_days=7)
    book.customer("a", t)
    book.customer("b", t)
    book.subscribe("s1", "a", "basic", t)
    book.subscribe("s2", "b", "trial", t)
    book.advance(T(2024, 2, 1))
    book.run(c.Cancel, T(2024, 2, 10), subscription_id="s1", immediately=True)
    book.advance(T(2024, 3, 1))
    db = book.db
    start, end = T(2024, 1, 1), T(2024, 3, 2)

    def keys(rows) -> set[str]:
        assert rows
        return set().union(*(set(r) for r in rows))

    flat_keys = {"lines", "pricing", "retention"}  # nested: JSON only, or reshaped
    assert keys(reads.plan_rows(reports.plans(db), "csv")) <= set(reads.PLAN_COLUMNS)
    assert keys(reports.subscriptions(db)) <= set(reads.SUBSCRIPTION_COLUMNS)
    assert keys(reports.invoices(db)) - flat_keys <= set(reads.INVOICE_COLUMNS)
    assert keys(reports.payments(db)) <= set(reads.PAYMENT_COLUMNS)
    for report, columns in (
        (reports.mrr(db), reads.MRR_COLUMNS),
        (reports.movements(db, start, end), reads.MOVEMENT_COLUMNS),
        (reports.churn(db, start, end), reads.CHURN_COLUMNS),
    ):
        assert {"currency"} | keys(list(report.values())) == set(columns), columns
    assert keys(reads.revenue_rows(reports.revenue(db, start, end))) == set(reads.REVENUE_COLUMNS)
    assert keys(reports.cohorts(db)) - flat_keys == set(reads.COHORT_COLUMNS)


# ---- a recorded command's outcome --------------------------------------------------------------


def test_a_failure_to_render_an_outcome_falls_back_to_json_and_a_warning(
    capsys, monkeypatch
) -> None:
    def broken(*args, **kwargs) -> None:
        raise RuntimeError("the terminal went away")

    monkeypatch.setattr(render, "show", broken)
    outcome = {"command_id": "c1", "subscription_id": "s[/]x", "invoices": ["INV-1"]}
    render.show_outcome(outcome, "table")  # no exception: the command was recorded
    out, err = capsys.readouterr()
    assert json.loads(out) == outcome
    assert err.startswith("warning: the command was recorded") and len(err.splitlines()) == 1


def test_an_outcome_renders_normally_when_it_can(capsys) -> None:
    render.show_outcome({"subscription_id": "s[/]x", "status": "active"}, "table")
    out, err = capsys.readouterr()
    assert "s[/]x" in out and err == ""


# ---- errors -------------------------------------------------------------------------------------


def test_an_error_line_is_one_line_masked_and_free_of_controls() -> None:
    line = errors.error_line(
        "bad\nvalue\x1b[2J at postgresql://u:pw@h/db, card 4242 4242 4242 4242"
    )
    assert "\n" not in line and "\x1b" not in line
    assert line == "error: bad value\\x1b[2J at postgresql://u:***@h/db, card **** **** **** 4242"


def test_a_data_dir_that_is_a_file_is_named(tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    data_dir.write_text("not a directory")
    config = Config(data_dir=data_dir)
    with pytest.raises(FileExistsError) as caught:
        config.read_db_url()  # makes the data dir, as every command does first
    assert errors.explain(caught.value, config) == (
        f"the data directory {data_dir} is a file; give a directory (--data-dir)",
        1,
    )


@pytest.mark.parametrize("name", ["events.sqlite", "read.sqlite", "keys.sqlite"])
def test_a_store_file_that_is_not_sqlite_is_named(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"garbage, not a database" * 20)
    with pytest.raises(sqlite3.DatabaseError) as caught:
        sqlite3.connect(tmp_path / name).execute("PRAGMA journal_mode=WAL")
    wrapped = _raised_from(StoreOperationalError(str(caught.value)), caught.value)
    for exc in (caught.value, wrapped):
        message, status = errors.explain(exc, Config(data_dir=tmp_path))
        assert message == (
            f"{tmp_path} is not a subledger store ({name} is not an SQLite database)"
        )
        assert status == 1


def test_a_busy_data_dir_says_nothing_was_recorded_and_exits_75(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError) as caught:
            sqlite3.connect(path, timeout=0, isolation_level=None).execute("BEGIN IMMEDIATE")
    finally:
        holder.execute("ROLLBACK")
    wrapped = _raised_from(StoreOperationalError(str(caught.value)), caught.value)
    for exc in (caught.value, wrapped):
        assert errors.explain(exc, Config(data_dir=tmp_path)) == (
            f"the data directory {tmp_path} is busy (another subledger process is writing);"
            " nothing was recorded, try again",
            75,
        )


def test_an_unreachable_postgresql_is_named_by_host_port_and_setting_not_password() -> None:
    url = "postgresql://ledger:s3cret@127.0.0.1:1/events"
    with pytest.raises(psycopg2.OperationalError) as caught:
        psycopg2.connect(url, connect_timeout=5)
    config = Config(event_store=url, read_db="postgresql://ledger:s3cret@127.0.0.1:2/read")
    message, status = errors.explain(caught.value, config)
    assert message == (
        "cannot reach PostgreSQL at 127.0.0.1:1 (SUBLEDGER_EVENT_STORE); "
        "check it is running (ops/services status)"
    )
    assert status == 1 and "s3cret" not in message


@pytest.mark.parametrize(
    "exc",
    [
        KafkaConnectionError("connect failed"),
        KafkaTimeoutError("Unable to bootstrap from [('127.0.0.1', 1)]"),
    ],
    ids=["connection", "bootstrap-timeout"],
)
def test_an_unreachable_kafka_is_named_by_its_bootstrap(exc: Exception) -> None:
    config = Config(kafka_bootstrap="127.0.0.1:1")
    assert errors.explain(exc, config) == (
        "cannot reach Kafka at 127.0.0.1:1 (SUBLEDGER_KAFKA_BOOTSTRAP); "
        "check it is running (ops/services status)",
        1,
    )


def test_an_unexpected_failure_has_no_class_name_no_errno_and_no_card_number() -> None:
    message, _ = errors.explain(ValueError("odd value 4242424242424242"))
    line = errors.error_line(message)
    assert line == (
        "error: unexpected failure: odd value ************4242 "
        "(SUBLEDGER_DEBUG=1 shows the details)"
    )
    message, _ = errors.explain(FileNotFoundError(2, "No such file or directory", "/x/y"))
    assert message.startswith("unexpected failure: no such file or directory: /x/y")
    assert "Errno" not in message and "FileNotFoundError" not in message


def test_a_number_too_large_to_store_is_said_in_words() -> None:
    with pytest.raises(OverflowError) as caught:
        sqlite3.connect(":memory:").execute("SELECT ?", (2**70,))
    message, _ = errors.explain(caught.value)
    assert message.startswith("a number is too large to store")
    assert "Python int" not in message and "OverflowError" not in message


def _raised_from(outer: BaseException, inner: BaseException) -> BaseException:
    """`outer` as eventsourcing raises it: from the driver's exception."""
    try:
        raise outer from inner
    except BaseException as exc:
        return exc
