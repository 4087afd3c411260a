"""A real SMTP server for the notification tests (aiosmtpd, in a thread, on a free port).

It keeps every message it accepts, parsed, and can be told to refuse: `fail_next` answers
the next N messages with a temporary 451, `refuse` answers every one with a permanent 550.
"""

from __future__ import annotations

import socket
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def body(message: EmailMessage) -> str:
    """The text as the customer reads it (the wire's CRLF line ends as newlines)."""
    return str(message.get_content()).replace("\r\n", "\n")


class Inbox:
    """aiosmtpd's handler: what the server received, in order."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.lock = threading.Lock()
        self.fail_next = 0
        self.refuse = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            if self.refuse:
                return "550 5.1.1 no such mailbox here"
            if self.fail_next > 0:
                self.fail_next -= 1
                return "451 4.3.0 try again later"
            message = message_from_bytes(envelope.original_content or envelope.content,
                                         policy=policy.default)  # fmt: skip
            message["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
            self.messages.append(message)  # type: ignore[arg-type]
            return f"250 2.0.0 OK queued as q{len(self.messages)}"

    def with_template(self, template: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if m["X-Subledger-Template"] == template]

    def ids(self) -> list[str]:
        with self.lock:
            return [str(m["Message-ID"]) for m in self.messages]


class SMTPServer:
    """Starts on a free port; `url` is what SUBLEDGER_SMTP_URL takes."""

    def __init__(self) -> None:
        self.inbox = Inbox()
        self.port = free_port()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?timeout=5"

    def __enter__(self) -> SMTPServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
