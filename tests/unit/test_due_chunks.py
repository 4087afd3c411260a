"""Due work over many subscriptions commits in chunks, and a crash mid-way is finished by
running the same command again (domain/ledger/service.py states these boundaries)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from ledger_support import Book, T

from domain import commands as c
from domain.ports import ChargeResult, PaymentGateway

T0 = T(2025, 1, 1)
LATER = T(2025, 5, 1, 12)
SUBSCRIBERS = 6


class CrashingGateway:
    """Answers like the gateway it wraps, until the process 'dies' on charge number `after`."""

    def __init__(self, inner: PaymentGateway, after: int) -> None:
        self.inner, self.after, self.calls = inner, after, 0

    def charge(self, **request: Any) -> ChargeResult:
        self.calls += 1
        if self.calls >= self.after:
            raise RuntimeError("the process died here")
        return self.inner.charge(**request)


def a_book(data_dir: Path, chunk_size: int) -> Book:
    book = Book.embedded(data_dir, id_prefix="same")
    book.ledger.settings = dataclasses.replace(book.ledger.settings, chunk_size=chunk_size)
    book.plan("basic", T0)
    for n in range(SUBSCRIBERS):
        book.customer(f"cus_{n}", T0)
        book.subscribe(f"sub_{n}", f"cus_{n}", "basic", T(2025, 1, 1, n))
    return book


def books_of(book: Book) -> list[tuple[Any, ...]]:
    return [
        (i["number"], i["subscription_id"], i["total"], i["status"], i["issued_at"])
        for i in book.invoices()
    ]


def test_small_chunks_give_the_same_books(tmp_path: Path) -> None:
    whole, chunked = a_book(tmp_path / "whole", 500), a_book(tmp_path / "chunked", 3)
    try:
        for book in (whole, chunked):
            book.run(c.AdvanceClock, LATER, command_id="advance")
        assert books_of(chunked) == books_of(whole)
        assert len(books_of(whole)) == SUBSCRIBERS * 5  # signup + four renewals each
    finally:
        whole.close()
        chunked.close()


def test_a_crash_between_chunks_is_finished_by_the_same_command_again(tmp_path: Path) -> None:
    reference, crashed = a_book(tmp_path / "ref", 500), a_book(tmp_path / "crash", 3)
    try:
        reference.run(c.AdvanceClock, LATER, command_id="advance")
        gateway = crashed.ledger.gateway
        crashed.ledger.gateway = CrashingGateway(gateway, after=12)
        with pytest.raises(RuntimeError):
            crashed.run(c.AdvanceClock, LATER, command_id="advance")
        done = books_of(crashed)
        assert SUBSCRIBERS < len(done) < len(books_of(reference))  # some chunks committed
        crashed.ledger.gateway = gateway
        outcome = crashed.run(c.AdvanceClock, LATER, command_id="advance")
        assert outcome["duplicate"] is False  # its receipt came only after its due work
        assert books_of(crashed) == books_of(reference)
    finally:
        reference.close()
        crashed.close()
