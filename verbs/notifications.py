"""The CLI's notifications verbs (issue 9)."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
