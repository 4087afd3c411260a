"""The SMTP adapter against a real server that demands STARTTLS and a login (aiosmtpd with a
certificate made for the test by openssl): `?starttls=1` upgrades, verifies the server with
`cafile`, logs in, and the message arrives; without TLS or with a bad password it fails,
as a failure to retry (not a permanent refusal)."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from notify_support import Inbox, free_port

from adapters.smtp import DeliveryError, SMTPMailer
from domain.notifications import Email

EMAIL = Email(
    message_id="<msg_test@example.com>",
    sender="billing@example.com",
    recipient="ada@example.com",
    recipient_name="Ada Lovelace",
    subject="Über-receipt",
    body="Paid: 10.00 EUR — thank you.\n",
)


def certificate(where: Path) -> tuple[Path, Path]:
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def login(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = data.login == b"mailer" and data.password == b"s3cret"
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Inbox, int, Path]]:
    cert, key = certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox, port = Inbox(), free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=login,
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield inbox, port, cert
    finally:
        controller.stop()


def test_starttls_login_and_a_verified_certificate(tls_server) -> None:
    inbox, port, cert = tls_server
    url = f"smtp://mailer:s3cret@127.0.0.1:{port}?starttls=1&cafile={cert}&timeout=5"
    answer = SMTPMailer(url).send(EMAIL)
    assert answer.startswith("250 ")
    (received,) = inbox.messages
    assert received["Subject"] == "Über-receipt"
    assert received["Message-ID"] == "<msg_test@example.com>"
    assert received.get_content().replace("\r\n", "\n") == "Paid: 10.00 EUR — thank you.\n"


def test_without_tls_or_with_a_wrong_password_it_fails_to_be_retried(tls_server) -> None:
    inbox, port, cert = tls_server
    plain = f"smtp://mailer:s3cret@127.0.0.1:{port}?timeout=5"
    bad = f"smtp://mailer:wrong@127.0.0.1:{port}?starttls=1&cafile={cert}&timeout=5"
    unverified = f"smtp://mailer:s3cret@127.0.0.1:{port}?starttls=1&timeout=5"
    for url in (plain, bad, unverified):
        with pytest.raises(DeliveryError) as failed:
            SMTPMailer(url).send(EMAIL)
        assert failed.value.permanent is False, url
    assert inbox.messages == []
