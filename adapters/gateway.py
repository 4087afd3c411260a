"""A deterministic sandbox payment gateway that speaks Stripe's test tokens and decline codes.

It implements the domain's PaymentGateway port for the demo, tests and embedded books.
Given a path it keeps its charges and refunds in a SQLite file, as a real gateway keeps
them: a repeated idempotency key returns the first answer (and is counted as a call), so
the file says how often each key was asked and proves no attempt was charged twice.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from typing import Any

from adapters.sqlite_files import use_wal
from domain.ports import ChargeResult, RefundResult

# token -> (decline code, Stripe's message), as Stripe's test tokens decline
DECLINES = {
    "tok_chargeDeclined": ("card_declined", "Your card was declined."),
    "tok_chargeDeclinedInsufficientFunds": (
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "tok_chargeDeclinedExpiredCard": ("expired_card", "Your card has expired."),
    "tok_chargeDeclinedProcessingError": (
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
}

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS charges (idempotency_key TEXT PRIMARY KEY, token TEXT NOT NULL,"
    " amount INTEGER NOT NULL, currency TEXT NOT NULL, succeeded INTEGER NOT NULL,"
    " reference TEXT NOT NULL, code TEXT, message TEXT, calls INTEGER NOT NULL DEFAULT 1)",
    "CREATE TABLE IF NOT EXISTS refunds (idempotency_key TEXT PRIMARY KEY,"
    " charge_reference TEXT NOT NULL, amount INTEGER NOT NULL, currency TEXT NOT NULL,"
    " succeeded INTEGER NOT NULL, reference TEXT NOT NULL, code TEXT, message TEXT,"
    " calls INTEGER NOT NULL DEFAULT 1)",
)


class IdempotencyKeyReused(ValueError):
    """The same key with other parameters: Stripe refuses it too (a bug upstream of us)."""


# hex digits spelt as letters: a reference never holds a run of digits that could pass
# for a card number (the outcome command that carries it refuses those)
_LETTERS = str.maketrans("0123456789", "ghijklmnop")


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:24].translate(_LETTERS)


def _token_hash(token: str) -> str:
    """What the sandbox keeps of a payment token: enough to tell a reused idempotency key
    from a retry, nothing that reads as the customer's token once they are erased."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


class SandboxGateway:
    """Deterministic: the outcome depends only on the token, the reference on the key.

    `tok_visa` (and any other token) succeeds; the `tok_chargeDeclined*` family declines
    with Stripe's code and message, every time, as Stripe's test tokens do. A refund
    succeeds up to what its charge took (charges this sandbox knows), like Stripe's.
    """

    def __init__(self, path: str | None = None) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            path or ":memory:", check_same_thread=False, isolation_level=None, timeout=30
        )
        if path:  # WAL: a kill -9 loses no committed answer (a power cut may: a sandbox)
            use_wal(self._db)
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA secure_delete=ON")  # a token rewritten leaves no trace
        for statement in SCHEMA:
            self._db.execute(statement)
        self._hash_old_tokens()

    def _hash_old_tokens(self) -> None:
        """Charges an older version recorded with the token itself keep only its hash."""
        with self._lock, self._transaction():
            old = self._db.execute(
                "SELECT idempotency_key, token FROM charges WHERE token NOT LIKE 'sha256:%'"
            ).fetchall()
            self._db.executemany(
                "UPDATE charges SET token = ? WHERE idempotency_key = ?",
                [(_token_hash(token), key) for key, token in old],
            )

    def charge(
        self, *, token: str, amount: int, currency: str, idempotency_key: str
    ) -> ChargeResult:
        request = (_token_hash(token), amount, currency)
        with self._lock, self._transaction():
            row = self._first("charges", idempotency_key)
            if row is not None:
                if (row["token"], row["amount"], row["currency"]) != request:
                    raise IdempotencyKeyReused(
                        f"idempotency key {idempotency_key} was used for another charge"
                    )
                return ChargeResult(
                    bool(row["succeeded"]), row["reference"], row["code"], row["message"]
                )
            code, message = DECLINES.get(token, (None, None))
            digest = _digest(idempotency_key)
            result = (
                ChargeResult(False, f"ch_failed_{digest}", code, message)
                if code
                else ChargeResult(True, f"ch_{digest}")
            )
            self._db.execute(
                "INSERT INTO charges (idempotency_key, token, amount, currency, succeeded,"
                " reference, code, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (idempotency_key, *request, int(result.succeeded), result.reference, code, message),
            )
            return result

    def refund(
        self, *, charge_reference: str, amount: int, currency: str, idempotency_key: str
    ) -> RefundResult:
        with self._lock, self._transaction():
            row = self._first("refunds", idempotency_key)
            if row is not None:
                if (row["charge_reference"], row["amount"]) != (charge_reference, amount):
                    raise IdempotencyKeyReused(
                        f"idempotency key {idempotency_key} was used for another refund"
                    )
                return RefundResult(
                    bool(row["succeeded"]), row["reference"], row["code"], row["message"]
                )
            result = self._refund_result(charge_reference, amount, currency, idempotency_key)
            self._db.execute(
                "INSERT INTO refunds (idempotency_key, charge_reference, amount, currency,"
                " succeeded, reference, code, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    idempotency_key,
                    charge_reference,
                    amount,
                    currency,
                    int(result.succeeded),
                    result.reference,
                    result.code,
                    result.message,
                ),
            )
            return result

    def _refund_result(
        self, charge_reference: str, amount: int, currency: str, key: str
    ) -> RefundResult:
        charged = self._db.execute(
            "SELECT amount, currency FROM charges WHERE reference = ? AND succeeded = 1",
            (charge_reference,),
        ).fetchone()
        if charged is None and not charge_reference.startswith("ch_"):
            return RefundResult(
                False, "", "resource_missing", f"No such charge: '{charge_reference}'"
            )
        if charged is not None:
            refunded = self._db.execute(
                "SELECT COALESCE(SUM(amount), 0) FROM refunds"
                " WHERE charge_reference = ? AND succeeded = 1",
                (charge_reference,),
            ).fetchone()[0]
            left = charged[0] - refunded
            if charged[1] != currency or amount > left:
                return RefundResult(
                    False,
                    "",
                    "amount_too_large",
                    f"Refund amount ({amount}) is greater than unrefunded amount on charge"
                    f" ({left})",
                )
        return RefundResult(True, f"re_{_digest(key)}")

    def calls(self) -> dict[str, int]:
        """How often each charge key was asked (a repeated key is never charged again)."""
        with self._lock:
            rows = self._db.execute("SELECT idempotency_key, calls FROM charges").fetchall()
        return dict(rows)

    def _first(self, table: str, key: str) -> dict[str, Any] | None:
        cur = self._db.execute(f"SELECT * FROM {table} WHERE idempotency_key = ?", (key,))
        row = cur.fetchone()
        if row is None:
            return None
        self._db.execute(f"UPDATE {table} SET calls = calls + 1 WHERE idempotency_key = ?", (key,))
        return dict(zip([d[0] for d in cur.description], row, strict=True))

    def _transaction(self) -> _Immediate:
        return _Immediate(self._db)

    def close(self) -> None:
        self._db.close()


class _Immediate:
    """BEGIN IMMEDIATE ... COMMIT: processes sharing the file answer a key one at a time."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
