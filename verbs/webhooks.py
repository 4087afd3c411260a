"""The CLI's webhooks verbs (issue 9)."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
