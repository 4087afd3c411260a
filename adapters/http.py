"""Webhook HTTP: signing a body, and POSTing it with the standard library (urllib).

No client library: a POST with a few headers needs none, and urllib is always there. The
sender is bounded: every socket operation times out (`timeout_s`), at most 64 KiB of an
answer is read, redirects are not followed (a 3xx is a failure, as Stripe treats it), and
proxies come from the usual environment variables (HTTPS_PROXY, NO_PROXY). `SendLock` lets
one process send at a time (an advisory lock on PostgreSQL, a file lock embedded).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from adapters import postgres

SIGNATURE_HEADER = "Subledger-Signature"
DELIVERY_HEADER = "Subledger-Delivery"
USER_AGENT = "subledger-webhooks/1"
SEND_LOCK = 0x5B1ED7E7  # advisory lock id: "subledger webhooks"
MAX_ANSWER = 64 * 1024  # bytes of an answer read (and thrown away): enough to end the exchange


def signature(secret: str, body: bytes, t: int) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`, Stripe's scheme."""
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(
    secret: str, body: bytes, header: str, *, tolerance_s: int = 300, now: float | None = None
) -> bool:
    """What a receiver does: recompute the HMAC over the raw body, compare in constant time,
    and refuse a timestamp further than `tolerance_s` from now (a replayed capture)."""
    pairs = [p.split("=", 1) for p in header.split(",") if "=" in p]
    stamps = [v for k, v in pairs if k == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit():
        return False
    t = int(stamps[0])
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        return False
    expected = signature(secret, body, t).rpartition("v1=")[2]
    return any(hmac.compare_digest(expected, v) for k, v in pairs if k == "v1")


@dataclass(frozen=True)
class Answer:
    """What an endpoint answered: its status (0: no answer) and, on failure, why."""

    status: int
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


_OPENER = urllib.request.build_opener(_NoRedirects())


def _why(exc: BaseException) -> str:
    """A few words, no errno, no exception class: 'timed out', 'connection refused'."""
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(reason, ssl.SSLError):
        return f"TLS: {getattr(reason, 'reason', None) or 'handshake failed'}".lower()
    if isinstance(reason, socket.gaierror):
        return "host not found"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return " ".join(str(reason).split())[:120] or "failed"


def post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> Answer:
    """POST `body` as JSON; never raises for what the network or the receiver does."""
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("User-Agent", USER_AGENT)
    for name, value in headers.items():
        request.add_header(name, value)
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            response.read(MAX_ANSWER)
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = int(exc.code)
        exc.close()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return Answer(0, f"no answer: {_why(exc)}")
    except Exception as exc:  # a malformed answer (http.client) is no answer either
        return Answer(0, f"no answer: {' '.join(str(exc).split())[:120] or 'bad response'}")
    if 200 <= status < 300:
        return Answer(status)
    return Answer(status, f"HTTP {status}")


class SendLock:
    """One sender at a time: an advisory lock on PostgreSQL, a file lock embedded."""

    def __init__(self, event_store: str | None, path: str) -> None:
        self.event_store = event_store
        self.path = path
        self._conn: Any = None

    @contextlib.contextmanager
    def held(self) -> Iterator[bool]:
        """Yields whether this process got the lock (without waiting for it)."""
        if self.event_store is not None:
            if self._conn is None:
                self._conn = postgres.connect(self.event_store)
            with self._conn.cursor() as cur:
                cur.execute("SELECT pg_try_advisory_lock(%s)", (SEND_LOCK,))
                got = bool(cur.fetchone()[0])
            try:
                yield got
            finally:
                if got:
                    with self._conn.cursor() as cur:
                        cur.execute("SELECT pg_advisory_unlock(%s)", (SEND_LOCK,))
            return
        with open(self.path, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
