"""Webhook signing secrets: the ledger's own configuration, never in an event or on Kafka.

Kept beside the customer keys (embedded: `keys.sqlite`; PostgreSQL: the event-store
database, as the customer keys are), encrypted with AES-GCM under a key of their own: the
`SUBLEDGER_WEBHOOK_SECRETS_KEY` setting when given (so the key can live in a secrets
manager, apart from the database), else one generated on first use and kept in its own
table. Each ciphertext names its endpoint, so a row copied onto another endpoint does not
decrypt as that endpoint's secret.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from eventsourcing.cryptography import AESCipher
from eventsourcing.utils import Environment

from adapters.postgres import connect
from adapters.sqlite_files import use_wal

KEY_NAME = "webhook-secrets"


class SecretsUnreadable(RuntimeError):
    """The stored secrets were encrypted under another key than the one configured."""


class SecretStore:
    """Secrets by endpoint id, on an SQLite file or a PostgreSQL database."""

    def __init__(self, url: str, key: str | None = None) -> None:
        self._lock = threading.Lock()
        self.postgres = url.startswith(("postgresql://", "postgres://"))
        prefix = "subledger_" if self.postgres else ""
        self._secrets = f"{prefix}webhook_secrets"
        self._keys = f"{prefix}secret_keys"
        if self.postgres:
            self._db: Any = connect(url)
        else:
            path = url.removeprefix("sqlite:///")
            self._db = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=30
            )
            use_wal(self._db)
            self._db.execute("PRAGMA secure_delete=ON")  # a removed secret is overwritten
        self._run(
            f"CREATE TABLE IF NOT EXISTS {self._secrets} ("
            "endpoint_id TEXT PRIMARY KEY, secret TEXT NOT NULL)"
        )
        self._run(
            f"CREATE TABLE IF NOT EXISTS {self._keys} (name TEXT PRIMARY KEY, key TEXT NOT NULL)"
        )
        self._cipher = AESCipher(Environment(env={AESCipher.CIPHER_KEY: key or self._own_key()}))

    def _run(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self.postgres:
            sql = sql.replace("?", "%s")
        with self._lock:
            cur = self._db.cursor()
            try:
                cur.execute(sql, params)
                return list(cur.fetchall()) if cur.description else []
            finally:
                cur.close()

    def _own_key(self) -> str:
        """The generated key, made once (the first process to store one wins)."""
        self._run(
            f"INSERT INTO {self._keys} (name, key) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
            (KEY_NAME, AESCipher.create_key(32)),
        )
        return self._run(f"SELECT key FROM {self._keys} WHERE name = ?", (KEY_NAME,))[0][0]

    def _seal(self, endpoint_id: str, secret: str) -> str:
        text = json.dumps({"endpoint_id": endpoint_id, "secret": secret}).encode()
        return self._cipher.encrypt(text).hex()

    def _open(self, endpoint_id: str, sealed: str) -> str:
        try:
            data = json.loads(self._cipher.decrypt(bytes.fromhex(sealed)))
        except Exception:
            raise SecretsUnreadable(
                "the webhook secrets cannot be decrypted with the configured key"
                " (SUBLEDGER_WEBHOOK_SECRETS_KEY changed?): add the endpoints again"
            ) from None
        if data.get("endpoint_id") != endpoint_id:
            raise SecretsUnreadable(f"the secret stored for endpoint {endpoint_id} is not its own")
        return str(data["secret"])

    def get(self, endpoint_id: str) -> str | None:
        rows = self._run(
            f"SELECT secret FROM {self._secrets} WHERE endpoint_id = ?", (endpoint_id,)
        )
        return self._open(endpoint_id, rows[0][0]) if rows else None

    def put_new(self, endpoint_id: str, secret: str) -> bool:
        """Store the endpoint's secret unless it has one; False if it has another one."""
        self._run(
            f"INSERT INTO {self._secrets} (endpoint_id, secret) VALUES (?, ?)"
            " ON CONFLICT (endpoint_id) DO NOTHING",
            (endpoint_id, self._seal(endpoint_id, secret)),
        )
        return self.get(endpoint_id) == secret

    def delete(self, endpoint_id: str) -> bool:
        found = self.get(endpoint_id) is not None
        self._run(f"DELETE FROM {self._secrets} WHERE endpoint_id = ?", (endpoint_id,))
        return found

    def close(self) -> None:
        self._db.close()


def secret_store(event_store: str | None, data_dir: Path, key: str | None = None) -> SecretStore:
    """Where the customer keys are: `keys.sqlite` embedded, the event-store database else."""
    if event_store is None:
        data_dir.mkdir(parents=True, exist_ok=True)
        return SecretStore(f"sqlite:///{data_dir / 'keys.sqlite'}", key)
    return SecretStore(event_store, key)
