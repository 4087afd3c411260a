"""Unit fixtures: a real Ledger on SQLite under the test's own temp dir (no services)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ledger_support import Book


@pytest.fixture
def book(tmp_path: Path) -> Iterator[Book]:
    """A fresh, empty book; closed after the test."""
    b = Book.embedded(tmp_path / "book")
    try:
        yield b
    finally:
        b.close()
