"""Email over SMTP (the standard library's smtplib): `SUBLEDGER_SMTP_URL`, one message a send.

`smtp://user:pass@host:port` (plain, port 25 by default), `?starttls=1` to upgrade with
STARTTLS before logging in, `smtps://` for TLS from the first byte (port 465); the
certificate is verified against the system's CAs, or `?cafile=/path/ca.pem`; `?timeout=S`
bounds every network wait (default 10 s). Every header is built from checked one-line
values (`domain.notifications.messages.Email`) by the email package's strict policy, which
refuses CR/LF in a header too: no value can add a header of its own.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from urllib.parse import parse_qs, unquote, urlsplit

from domain.notifications.messages import Email

TRUE = ("1", "true", "yes", "on")


class DeliveryError(Exception):
    """The server did not take the message: `permanent` if a retry cannot change that."""

    def __init__(self, message: str, *, permanent: bool = False, unreachable: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.unreachable = unreachable  # no server to talk to: no other message will go now


@dataclass(frozen=True, slots=True)
class SMTPSettings:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    tls: bool = False  # smtps://: TLS from the start
    cafile: str | None = None
    timeout: float = 10.0


def parse_smtp_url(url: str) -> SMTPSettings:
    """`smtp[s]://[user:pass@]host[:port][?starttls=1&cafile=...&timeout=S]`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(
            "SUBLEDGER_SMTP_URL is not a valid URL (smtp://user:pass@host:port)"
        ) from None
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError(
            "SUBLEDGER_SMTP_URL must be smtp://[user:password@]host[:port] or smtps://...,"
            " e.g. smtp://mail.example.com:587?starttls=1"
        )
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    tls = parts.scheme == "smtps"
    try:
        timeout = float(query.get("timeout", "10"))
    except ValueError:
        raise ValueError("SUBLEDGER_SMTP_URL: timeout must be a number of seconds") from None
    return SMTPSettings(
        host=parts.hostname,
        port=port or (465 if tls else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        starttls=query.get("starttls", "").lower() in TRUE,
        tls=tls,
        cafile=query.get("cafile") or None,
        timeout=max(timeout, 0.1),
    )


def build_message(email: Email) -> EmailMessage:
    """The MIME message: plain text, UTF-8, headers from checked values only."""
    message = EmailMessage(policy=SMTP.clone(cte_type="7bit"))  # any server takes it
    message["From"] = email.sender
    message["To"] = formataddr((email.recipient_name, email.recipient))
    message["Subject"] = email.subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = email.message_id
    for name, value in email.headers:
        message[name] = value
    message.set_content(email.body)
    return message


class SMTPMailer:
    """Sends one email per connection; the answer to DATA is the delivery's reference."""

    def __init__(self, url: str, *, timeout: float | None = None) -> None:
        self.settings = parse_smtp_url(url)
        if timeout is not None:
            self.settings = _with_timeout(self.settings, timeout)

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.settings.cafile)

    def _connect(self, timeout: float) -> smtplib.SMTP:
        s = self.settings
        if s.tls:
            return smtplib.SMTP_SSL(s.host, s.port, timeout=timeout, context=self._context())
        client = smtplib.SMTP(s.host, s.port, timeout=timeout)
        if s.starttls:
            client.ehlo()
            client.starttls(context=self._context())
        return client

    def send(self, email: Email, *, timeout: float | None = None) -> str:
        """Hand the message to the server; its queue answer, or DeliveryError."""
        message = build_message(email)
        wait = min(timeout, self.settings.timeout) if timeout else self.settings.timeout
        try:
            client = self._connect(max(wait, 0.1))
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(
                f"no connection to the mail server: {_words(exc)}", unreachable=True
            ) from None
        try:
            client.ehlo_or_helo_if_needed()
            if self.settings.username:
                client.login(self.settings.username, self.settings.password or "")
            code, answer = client.mail(email.sender)
            if code != 250:
                raise DeliveryError(f"sender refused: {code} {_text(answer)}")
            code, answer = client.rcpt(email.recipient)
            if code not in (250, 251):
                raise DeliveryError(
                    f"recipient refused: {code} {_text(answer)}", permanent=500 <= code < 600
                )
            code, answer = client.data(message.as_bytes())
            if code != 250:
                raise DeliveryError(
                    f"message refused: {code} {_text(answer)}", permanent=500 <= code < 600
                )
            return f"{code} {_text(answer)}".strip()
        except DeliveryError:
            raise
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"mail server: {_words(exc)}") from None
        finally:
            try:
                client.quit()
            except Exception:
                client.close()


def _with_timeout(settings: SMTPSettings, timeout: float) -> SMTPSettings:
    from dataclasses import replace

    return replace(settings, timeout=timeout)


def _text(answer: bytes | str) -> str:
    text = answer.decode(errors="replace") if isinstance(answer, bytes) else str(answer)
    return " ".join(text.split())[:200]


def _words(exc: BaseException) -> str:
    """An exception as a few words: the server's code and text, or what the network said."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"[:200]
    return (" ".join(str(exc).split()) or type(exc).__name__)[:200]
