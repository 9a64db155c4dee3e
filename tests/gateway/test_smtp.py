"""Email over SMTP: a real aiosmtpd server on loopback with STARTTLS and credentials."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import ipaddress
import ssl
from datetime import timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.app import create_app
from gateway.clock import ManualClock
from gateway.config import MailConfig
from gateway.domain.model import Role
from gateway.mail import MailError, build_message, make_mailer
from gateway.store.store import open_store
from sandbox.ports import free_port
from tests.gateway.conftest import ONCOR, Gateway, gateway_config, start_server, stop_server


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




def start_smtp(tmp_path: Path, port: int) -> tuple[Controller, Inbox, Path]:
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

    controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=context,
                            require_starttls=True, authenticator=authenticator,
                            auth_required=True)
    controller.start()
    return controller, inbox, cert


@pytest.fixture
def smtp_server(tmp_path: Path) -> Any:
    controller, inbox, cert = start_smtp(tmp_path, free_port())
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


async def _tls_closed() -> None:
    """aiosmtplib closes a failed STARTTLS session asynchronously (the TLS shutdown runs after
    `send` has raised). In the gateway the loop lives on and finishes it; a test's loop ends with
    the test, so it waits for that here rather than leave the socket to the garbage collector."""
    await asyncio.sleep(0.3)


async def test_smtp_wrong_password_is_a_mail_error(smtp_server: Any, tmp_path: Path) -> None:
    controller, inbox, cert = smtp_server
    mailer = make_mailer(_config(controller, cert, smtp_password="wrong", smtp_timeout_seconds=1),
                         tmp_path / "x.mbox")
    with pytest.raises(MailError, match=r"SMTP 127\.0\.0\.1"):
        await mailer.send(build_message(sender="a@hangw.test", to="b@example.test",
                                        subject="s", text="t", html=None))
    await _tls_closed()
    assert inbox.messages == []


async def test_smtp_untrusted_certificate_is_refused(smtp_server: Any, tmp_path: Path) -> None:
    controller, inbox, _cert = smtp_server
    mailer = make_mailer(_config(controller, Path("/nonexistent"), smtp_ca_file=""),
                         tmp_path / "x.mbox")
    with pytest.raises(MailError):
        await mailer.send(build_message(sender="a@hangw.test", to="b@example.test",
                                        subject="s", text="t", html=None))
    await _tls_closed()
    assert inbox.messages == []


async def test_invitation_survives_a_mail_outage(tmp_path: Path) -> None:
    """SMTP down: the invitation is accepted (201) and its email waits in the mail queue; when the
    server is back, the lifecycle timer delivers it and the customer's link works."""
    port = free_port()
    cert_dir = tmp_path / "tls"
    cert_dir.mkdir()
    cert_path = cert_dir / "cert.pem"
    config = gateway_config(tmp_path / "data", mail={
        "from_address": "consent@hangw.test", "smtp_host": "127.0.0.1", "smtp_port": port,
        "smtp_tls": "starttls", "smtp_username": "hangw", "smtp_password": "s3cret",
        "smtp_ca_file": str(cert_path), "smtp_timeout_seconds": 5})
    config.data_dir.mkdir(parents=True)
    store = await open_store(config.storage_url)
    clock = ManualClock()
    _cred, op_token = await store.issue_credential(role=Role.OPERATOR, label="t", now=clock.now())
    app = create_app(config, store=store, clock=clock, run_timers=False)
    server, task, http_port = await start_server(app)
    controller = None
    try:
        config.server.public_url = f"http://127.0.0.1:{http_port}"
        async with httpx.AsyncClient(base_url=config.server.public_url, timeout=20) as client:
            gw = Gateway(config.server.public_url, client, store, clock, config, op_token)
            await gw.load_premises()
            _pid, token = await gw.new_party("Acme", "123456789")
            r = await gw.invite(token, esi_ids=[(ONCOR, "MTR-1")], email="alice@example.test")
            assert r.status_code == 201, r.text
            assert await store.mail_counts() == {"pending": 1, "sent": 0, "dead": 0}

            # The server comes up with the certificate the gateway trusts.
            key_dir = tmp_path / "server"
            key_dir.mkdir()
            controller, inbox, _ = start_smtp(key_dir, port)
            cert_path.write_bytes((key_dir / "cert.pem").read_bytes())

            assert (await gw.run_timers())["mails_sent"] == 0  # not due yet (back-off)
            clock.advance(timedelta(seconds=61))
            assert (await gw.run_timers())["mails_sent"] == 1
            [message] = inbox.messages
            assert await store.mail_counts() == {"pending": 0, "sent": 1, "dead": 0}
            link = gw.link(message, "/consent/")
            done = await client.post(link, data={"decision": "accept"})
            assert "You accepted" in done.text
    finally:
        if controller is not None:
            controller.stop()
        await stop_server(server, task)
        await store.close()
