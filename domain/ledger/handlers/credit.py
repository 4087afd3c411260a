"""The credit commands' handlers (issue 9)."""

from __future__ import annotations
