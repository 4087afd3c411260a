"""SUBLEDGER_DEBUG and SUBLEDGER_LOG_LEVEL as a user sets them, read through `Config`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SUBLEDGER = str(Path(sys.executable).with_name("subledger"))


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    return subprocess.run(
        [SUBLEDGER, *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**base, "COLUMNS": "200", **env},
        timeout=120,
    )


def test_an_unexpected_failure_is_one_line_unless_subledger_debug_asks_for_the_traceback(
    tmp_path: Path,
) -> None:
    a_file = tmp_path / "book"
    a_file.write_text("not a directory")
    for quiet in ({}, {"SUBLEDGER_DEBUG": "0"}):
        proc = run("--data-dir", str(a_file), "plan", "list", **quiet)
        assert proc.returncode == 1
        assert (
            proc.stderr
            == f"error: the data directory {a_file} is a file; give a directory (--data-dir)\n"
        )
    proc = run("--data-dir", str(a_file), "plan", "list", SUBLEDGER_DEBUG="1")
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert "FileExistsError" in proc.stderr


def test_serve_refuses_a_log_level_that_does_not_exist(tmp_path: Path) -> None:
    proc = run("--data-dir", str(tmp_path), "serve", SUBLEDGER_LOG_LEVEL="loud")
    assert proc.returncode == 1
    assert proc.stderr == (
        "error: SUBLEDGER_LOG_LEVEL: 'loud' is not a log level; set DEBUG, INFO, WARNING or ERROR\n"
    )
    assert list(tmp_path.iterdir()) == []  # refused before anything was opened


def test_serve_takes_a_log_level_in_any_case(tmp_path: Path) -> None:
    proc = run("--data-dir", str(tmp_path), "serve", SUBLEDGER_LOG_LEVEL="warning")
    assert proc.returncode == 1  # the level is fine; embedded, serve has no Kafka to serve
    assert proc.stderr == (
        "error: serve needs SUBLEDGER_EVENT_STORE and SUBLEDGER_KAFKA_BOOTSTRAP\n"
    )


def test_a_key_store_that_cannot_work_is_one_line_naming_the_setting(
    tmp_path: Path, pg_database_pair: Any, services: dict[str, str]
) -> None:
    events = pg_database_pair.event_store_url
    stores = {"SUBLEDGER_EVENT_STORE": events, "SUBLEDGER_READ_DB": pg_database_pair.read_db_url}
    same = run("plan", "list", **stores, SUBLEDGER_KEY_STORE=events)
    assert (same.returncode, same.stdout) == (1, "")
    assert same.stderr == (
        "error: SUBLEDGER_KEY_STORE names the event store's own database; keys must live"
        " apart from the events (default: the database <name>_keys)\n"
    )
    # ops/services' key database, with the ledger's login: that role may not open it
    refused = run(
        "plan", "list", **stores, SUBLEDGER_KEY_STORE=events.rsplit("/", 1)[0] + "/subledger_keys"
    )
    assert refused.returncode == 1
    host_port = events.split("@", 1)[1].split("/", 1)[0]
    assert refused.stderr == (
        f"error: PostgreSQL at {host_port} (SUBLEDGER_KEY_STORE) does not let this user open"
        " the database (permission denied); check the user in the URL\n"
    )
