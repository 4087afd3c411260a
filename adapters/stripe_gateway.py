"""Stripe behind the PaymentGateway port, through the official `stripe` library.

A charge is a PaymentIntent confirmed off-session with the customer's payment method (the
token), every request carrying the charge's idempotency key. Stripe forgets keys after 24
hours, so the intent's id is written to a journal (`Journal`: a table beside the event
store, shared by every payments worker) *before* it is confirmed, and the confirmation is
marked before it is sent; a charge asked again finds the intent by id and asks Stripe what
became of it, so even a long outage never confirms a second intent for one attempt. (A
crash between creating an intent and journaling it leaves at most an unconfirmed intent:
it charges nothing.) Refunds carry the key in their metadata and are looked up by it when
one may have been sent. Timeouts, connection errors, 5xx and 429 answers raise
GatewayUnavailable (asked again later, same key); card errors are declines, mapped to the
sandbox's codes (card_declined, insufficient_funds, expired_card, ...).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import stripe

from adapters.postgres import connect
from domain.ports import ChargeResult, GatewayUnavailable, RefundResult

TABLE = "subledger_stripe_requests"
DDL = f"CREATE TABLE IF NOT EXISTS {TABLE} (idempotency_key TEXT PRIMARY KEY, state TEXT NOT NULL)"


class Journal:
    """What was sent to Stripe for each key (intent id, confirmation sent, refund id)."""

    def __init__(self, sqlite_path: str | None = None, postgres_url: str | None = None) -> None:
        self._sqlite_path, self._url = sqlite_path, postgres_url
        self._lock = threading.Lock()
        self._db: Any = None
        self._mark = "%s" if postgres_url else "?"

    def _conn(self) -> Any:  # connects on first use, never at construction
        if self._db is None:
            if self._url:
                self._db = connect(self._url)
            else:
                path = self._sqlite_path or ":memory:"
                self._db = sqlite3.connect(
                    path, check_same_thread=False, isolation_level=None, timeout=30
                )
            cur = self._db.cursor()
            cur.execute(DDL)
        return self._db

    def get(self, key: str) -> dict[str, Any]:
        with self._lock:
            cur = self._conn().cursor()
            cur.execute(f"SELECT state FROM {TABLE} WHERE idempotency_key = {self._mark}", (key,))
            row = cur.fetchone()
        return json.loads(row[0]) if row else {}

    def put(self, key: str, **state: Any) -> None:
        """Merge `state` into the key's entry, durably, before the request it stands for."""
        with self._lock:
            cur = self._conn().cursor()
            m = self._mark
            cur.execute(f"SELECT state FROM {TABLE} WHERE idempotency_key = {m}", (key,))
            row = cur.fetchone()
            merged = json.dumps({**(json.loads(row[0]) if row else {}), **state}, sort_keys=True)
            cur.execute(
                f"INSERT INTO {TABLE} (idempotency_key, state) VALUES ({m}, {m})"
                " ON CONFLICT (idempotency_key) DO UPDATE SET state = excluded.state",
                (key, merged),
            )

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def journal_for(event_store: str | None, data_dir: Path) -> Journal:
    """Beside the event store: its PostgreSQL database, or a SQLite file in the data dir."""
    if event_store:
        return Journal(postgres_url=event_store)
    data_dir.mkdir(parents=True, exist_ok=True)
    return Journal(sqlite_path=str(data_dir / "stripe.sqlite"))


def decline(error: dict[str, Any]) -> tuple[str, str | None]:
    """(code, message) of a Stripe error object, in the sandbox's words.

    The specific reason when Stripe gives one (`decline_code`: insufficient_funds, ...),
    else the error's code (card_declined for a generic decline, expired_card, ...).
    """
    code, reason = error.get("code"), error.get("decline_code")
    if reason and reason != "generic_decline":
        return str(reason), error.get("message")
    return str(code or reason or "card_declined"), error.get("message")


def _unavailable(err: stripe.StripeError) -> bool:
    if isinstance(err, stripe.APIConnectionError | stripe.RateLimitError | stripe.APIError):
        return True
    status = err.http_status or 0
    return status >= 500 or status == 429 or err.code in ("idempotency_key_in_use", "lock_timeout")


class StripeGateway:
    """PaymentIntents and Refunds on a Stripe account (or stripe-mock at `api_base`)."""

    def __init__(
        self,
        api_key: str,
        *,
        api_base: str | None = None,
        journal: Journal | None = None,
        client: stripe.StripeClient | None = None,
        network_retries: int = 1,
    ) -> None:
        self.journal = journal or Journal()
        self.client = client or stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else {},
            max_network_retries=network_retries,  # the same key each time, by the library
        )

    # ---- charges ------------------------------------------------------------------------

    def charge(
        self, *, token: str, amount: int, currency: str, idempotency_key: str
    ) -> ChargeResult:
        key, intent = idempotency_key, None
        try:
            entry = self.journal.get(key)
            intent = entry.get("intent")
            if intent is None:
                created = self.client.v1.payment_intents.create(
                    params={
                        "amount": amount,
                        "currency": currency.lower(),
                        "payment_method": token,
                        "payment_method_types": ["card"],
                        "confirm": False,
                        "metadata": {"subledger_key": key},
                    },
                    options={"idempotency_key": f"{key}:create"},
                )
                intent = str(created.id)
                self.journal.put(key, intent=intent)  # before confirming: resumed by id
            if entry.get("confirming"):  # sent before: what became of it?
                known = self._settled(self.client.v1.payment_intents.retrieve(intent))
                if known is not None:
                    return known
            self.journal.put(key, confirming=True)
            confirmed = self.client.v1.payment_intents.confirm(
                intent,
                params={"off_session": True},
                options={"idempotency_key": f"{key}:confirm"},
            )
            result = self._settled(confirmed)
            if result is None:
                raise GatewayUnavailable(f"payment intent {intent} is {confirmed.status}")
            return result
        except stripe.CardError as err:
            code, message = decline((err.json_body or {}).get("error") or {})
            pi = ((err.json_body or {}).get("error") or {}).get("payment_intent") or {}
            return ChargeResult(False, str(pi.get("id") or intent or ""), code, message)
        except stripe.StripeError as err:
            if _unavailable(err):
                raise GatewayUnavailable(
                    f"Stripe did not answer: {err.user_message or err}"
                ) from err
            if err.code == "payment_intent_unexpected_state" and intent:
                known = self._settled(self.client.v1.payment_intents.retrieve(intent))
                if known is not None:
                    return known
            raise

    def _settled(self, pi: Any) -> ChargeResult | None:
        """The outcome an intent shows, or None if it still needs confirming."""
        status, reference = str(pi.status), str(pi.id)
        if status == "succeeded":
            return ChargeResult(True, reference)
        if status in ("processing", "requires_capture"):
            raise GatewayUnavailable(f"payment intent {reference} is {status}")
        if status == "requires_action":
            return ChargeResult(
                False, reference, "authentication_required", "The card needs authentication."
            )
        if status == "canceled":
            return ChargeResult(False, reference, "canceled", "The payment was canceled.")
        error = pi.to_dict().get("last_payment_error")
        if status == "requires_payment_method" and error:
            return ChargeResult(False, reference, *decline(error))
        return None  # requires_confirmation (or no method yet): confirm it

    # ---- refunds ------------------------------------------------------------------------

    def refund(
        self, *, charge_reference: str, amount: int, currency: str, idempotency_key: str
    ) -> RefundResult:
        key = f"refund:{idempotency_key}"
        on = "charge" if charge_reference.startswith(("ch_", "py_")) else "payment_intent"
        try:
            entry = self.journal.get(key)
            if entry.get("sent"):  # it may have reached Stripe: find it by its key
                found = self.client.v1.refunds.list(params={on: charge_reference, "limit": 100})
                for refund in found.data:
                    if (refund.metadata or {}).get("subledger_key") == idempotency_key:
                        return self._refunded(refund)
            self.journal.put(key, sent=True)
            refund = self.client.v1.refunds.create(
                params={
                    on: charge_reference,
                    "amount": amount,
                    "metadata": {"subledger_key": idempotency_key},
                },
                options={"idempotency_key": idempotency_key},
            )
            return self._refunded(refund)
        except stripe.StripeError as err:
            if _unavailable(err):
                raise GatewayUnavailable(
                    f"Stripe did not answer: {err.user_message or err}"
                ) from err
            body = (err.json_body or {}).get("error") or {}
            if isinstance(err, stripe.CardError | stripe.InvalidRequestError) and body:
                return RefundResult(False, "", str(body.get("code") or "refund_failed"),
                                    body.get("message"))  # fmt: skip
            raise

    @staticmethod
    def _refunded(refund: Any) -> RefundResult:
        status = str(refund.status)
        if status in ("succeeded", "pending", "requires_action"):
            return RefundResult(True, str(refund.id))
        reason = refund.to_dict().get("failure_reason") or status
        return RefundResult(False, str(refund.id), str(reason), f"The refund {status}.")

    def close(self) -> None:
        self.journal.close()
