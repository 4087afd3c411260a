"""Personal data encrypted with one key per customer, the keys held apart from the events.

Erasure destroys the customer's key (crypto-shredding): the events stay, unreadable.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from typing import Protocol

from eventsourcing.cipher import AESCipher
from eventsourcing.utils import Environment


class KeyStore(Protocol):
    def get(self, customer_id: str) -> str | None: ...

    def put_new(self, customer_id: str, key: str) -> str:
        """Store `key` unless the customer already has one; return the key in force."""
        ...

    def delete(self, customer_id: str) -> bool: ...


class SQLiteKeyStore:
    """Keys in their own SQLite file, beside (never inside) the event store."""

    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA secure_delete=ON")  # a shredded key is overwritten
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS customer_keys ("
            "customer_id TEXT PRIMARY KEY, key TEXT NOT NULL)"
        )

    def get(self, customer_id: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT key FROM customer_keys WHERE customer_id = ?", (customer_id,)
            ).fetchone()
        return row[0] if row else None

    def put_new(self, customer_id: str, key: str) -> str:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO customer_keys (customer_id, key) VALUES (?, ?)",
                (customer_id, key),
            )
            row = self._db.execute(
                "SELECT key FROM customer_keys WHERE customer_id = ?", (customer_id,)
            ).fetchone()
        return row[0]

    def delete(self, customer_id: str) -> bool:
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM customer_keys WHERE customer_id = ?", (customer_id,)
            )
            # the write-ahead log still holds the key until checkpointed and truncated
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return cur.rowcount > 0

    def close(self) -> None:
        self._db.close()


class Vault:
    """Encrypts and decrypts a customer's personal data with that customer's own key."""

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys
        self._ciphers: dict[str, AESCipher] = {}

    def _cipher(self, key: str) -> AESCipher:
        cipher = self._ciphers.get(key)
        if cipher is None:
            cipher = AESCipher(Environment(env={AESCipher.CIPHER_KEY: key}))
            self._ciphers[key] = cipher
        return cipher

    def encrypt(self, customer_id: str, data: dict[str, object]) -> str:
        key = self.keys.get(customer_id)
        if key is None:
            key = self.keys.put_new(customer_id, AESCipher.create_key(32))
        plaintext = json.dumps(data, sort_keys=True).encode()
        return self._cipher(key).encrypt(plaintext).hex()

    def decrypt(self, customer_id: str, ciphertext: str) -> dict[str, object] | None:
        """The personal data, or None once the customer's key has been destroyed."""
        key = self.keys.get(customer_id)
        if key is None:
            return None
        return json.loads(self._cipher(key).decrypt(bytes.fromhex(ciphertext)))

    def shred(self, customer_id: str) -> bool:
        self._ciphers.clear()
        return self.keys.delete(customer_id)
