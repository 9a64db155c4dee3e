"""Email over SMTP: a real aiosmtpd server on loopback with STARTTLS and credentials."""

from __future__ import annotations

import datetime as dt
import email
import ipaddress
import socket
import ssl
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.config import MailConfig
from gateway.mail import MailError, build_message, make_mailer


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.auth_users: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_server(tmp_path: Path) -> Any:
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"hangw" and \
            auth_data.password == b"s3cret"
        if ok:
            inbox.auth_users.append(auth_data.login.decode())
        return AuthResult(success=ok)

    with socket.socket() as probe:  # a free loopback port (aiosmtpd cannot report port 0's)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=context,
                            require_starttls=True, authenticator=authenticator,
                            auth_required=True)
    controller.start()
    try:
        yield controller, inbox, cert
    finally:
        controller.stop()


def _config(controller: Any, cert: Path, **overrides: Any) -> MailConfig:
    return MailConfig.model_validate({
        "from_address": "consent@hangw.test", "smtp_host": "127.0.0.1",
        "smtp_port": controller.port, "smtp_tls": "starttls",
        "smtp_username": "hangw", "smtp_password": "s3cret", "smtp_ca_file": str(cert),
        "smtp_timeout_seconds": 10, **overrides})


async def test_smtp_starttls_with_credentials(smtp_server: Any, tmp_path: Path) -> None:
    controller, inbox, cert = smtp_server
    mailer = make_mailer(_config(controller, cert), tmp_path / "unused.mbox")
    await mailer.send(build_message(sender="consent@hangw.test", to="alice@example.test",
                                    subject="Acme asks for your consent",
                                    text="Review: http://127.0.0.1/consent/abc", html=None))
    [message] = inbox.messages
    assert message["To"] == "alice@example.test"
    assert "consent/abc" in message.get_payload()
    assert inbox.auth_users == ["hangw"]
    assert not (tmp_path / "unused.mbox").exists()


async def test_smtp_wrong_password_is_a_mail_error(smtp_server: Any, tmp_path: Path) -> None:
    controller, inbox, cert = smtp_server
    mailer = make_mailer(_config(controller, cert, smtp_password="wrong", smtp_timeout_seconds=1),
                         tmp_path / "x.mbox")
    with pytest.raises(MailError, match=r"SMTP 127\.0\.0\.1"):
        await mailer.send(build_message(sender="a@hangw.test", to="b@example.test",
                                        subject="s", text="t", html=None))
    assert inbox.messages == []


async def test_smtp_untrusted_certificate_is_refused(smtp_server: Any, tmp_path: Path) -> None:
    controller, inbox, _cert = smtp_server
    mailer = make_mailer(_config(controller, Path("/nonexistent"), smtp_ca_file=""),
                         tmp_path / "x.mbox")
    with pytest.raises(MailError):
        await mailer.send(build_message(sender="a@hangw.test", to="b@example.test",
                                        subject="s", text="t", html=None))
    assert inbox.messages == []
