"""The CLI's own settings come through `Config`, like every other setting."""

from __future__ import annotations

import pytest

from bootstrap import Config
from verbs import render


@pytest.mark.parametrize(
    ("value", "debug"),
    [(None, False), ("", False), ("0", False), ("off", False), ("1", True), ("yes", True)],
)
def test_subledger_debug_is_read_by_config(value: str | None, debug: bool) -> None:
    env = {} if value is None else {"SUBLEDGER_DEBUG": value}
    assert Config.from_env(env).debug is debug


def test_subledger_log_level_is_read_by_config() -> None:
    assert Config.from_env({}).log_level == "INFO"
    assert Config.from_env({"SUBLEDGER_LOG_LEVEL": "WARNING"}).log_level == "WARNING"


def test_debug_shows_why_a_recorded_outcome_could_not_be_rendered(capsys, monkeypatch) -> None:
    def broken(*args, **kwargs) -> None:
        raise RuntimeError("the terminal went away")

    monkeypatch.setattr(render, "show", broken)
    render.show_outcome({"command_id": "c1"}, "table", debug=True)
    out, err = capsys.readouterr()
    assert out.strip() == '{"command_id":"c1"}'
    assert "Traceback" in err and "the terminal went away" in err
    assert err.rstrip().splitlines()[-1].startswith("warning: the command was recorded")
