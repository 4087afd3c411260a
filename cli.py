"""`subledger`: the command line. Thin: the group, its verbs (in `verbs/`), error handling."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from domain.errors import LedgerError
from verbs import (
    audit,
    billing,
    catalog,
    credit,
    customers,
    dashboard,
    exports,
    notifications,
    pipeline,
    report,
    simulation,
    subscriptions,
    webhooks,
)
from verbs.app import App
from verbs.errors import error_line, explain


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data-dir", help="Embedded default's directory (default ./.subledger).")
@click.version_option(package_name="subledger")
@click.pass_context
def cli(ctx: click.Context, data_dir: str | None) -> None:
    """subledger: an event-sourced subscription ledger.

    Plans, customers, subscriptions, invoices and payments as an immutable history, with
    read models for billing and metrics. Runs embedded (SQLite under --data-dir) unless
    SUBLEDGER_EVENT_STORE / SUBLEDGER_READ_DB name PostgreSQL databases.

    Ids (customer, plan, subscription, coupon, command ids, actors) are 1-200 characters,
    not blank, without control characters. A command dated before the ledger clock takes
    effect at the clock (the output says so); card numbers are refused in every field.
    """
    ctx.obj = App(data_dir)  # SUBLEDGER_DATA_DIR, when --data-dir is not given: see Config
    ctx.call_on_close(ctx.obj.close)


_TOPICS = (catalog, customers, subscriptions, billing, credit, notifications, webhooks, exports)
for _topic in (*_TOPICS, report, dashboard, simulation, pipeline, audit):
    for _verb in _topic.COMMANDS:  # each verbs module lists the commands it defines
        cli.add_command(_verb)


# ---- entry point -------------------------------------------------------------------------


def _config_for(args: list[str]) -> Any:
    """The settings a failed run used (--data-dir or the environment), to name them."""
    data_dir = None
    try:
        with cli.make_context("subledger", list(args), resilient_parsing=True) as ctx:
            data_dir = ctx.params.get("data_dir")
    except Exception:
        pass  # no --data-dir to be found: Config reads SUBLEDGER_DATA_DIR
    try:
        from bootstrap import Config

        return Config.from_env(data_dir=Path(data_dir) if data_dir else None)
    except Exception:
        return None


def _fail(message: str, status: int) -> NoReturn:
    click.echo(error_line(message), err=True)
    sys.exit(status)


def main() -> None:
    """Every failure is one line in the user's words (SUBLEDGER_DEBUG=1: the traceback)."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        _fail("aborted", 1)
    except click.UsageError as e:  # one line too, with where to look
        where = e.ctx.command_path if e.ctx else "subledger"
        _fail(f"{e.format_message()} (see '{where} --help')", e.exit_code)
    except click.ClickException as e:
        _fail(e.format_message(), e.exit_code)
    except LedgerError as e:
        _fail(str(e), 1)
    except Exception as e:
        config = _config_for(sys.argv[1:])  # before any Runtime: read here, from Config
        if config is not None and config.debug:
            raise
        _fail(*explain(e, config))


if __name__ == "__main__":
    main()
