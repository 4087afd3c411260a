"""Personal data encrypted with one key per customer, the keys held apart from the events.

Erasure destroys the customer's key (crypto-shredding): the events stay, unreadable. The
keys live behind the KeyStore port (domain.ports); adapters/keystores.py implements it.
"""

from __future__ import annotations

import json

from eventsourcing.cryptography import AESCipher
from eventsourcing.utils import Environment

from domain.ports import KeyStore

__all__ = ["Vault"]


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
        """Destroy the customer's key; cached ciphers go too, so none outlives it."""
        self._ciphers.clear()
        return self.keys.delete(customer_id)
