"""Outgoing email: SMTP when configured, else an mbox file in the data directory.

The mbox fallback lets the demo and the tests follow the links a customer would click.
"""

from __future__ import annotations

import asyncio
import mailbox
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Protocol

import aiosmtplib

from gateway.config import MailConfig, SmtpTls


class MailError(RuntimeError):
    """Mail could not be handed to the SMTP server or written to the mailbox."""


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


def build_message(
    *, sender: str, to: str, subject: str, text: str, html: str | None
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "localhost")
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


class MboxMailer:
    """Appends each message to an mbox file (blocking file I/O runs in a worker thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()

    def _append(self, message: EmailMessage) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        box = mailbox.mbox(self.path)
        try:
            box.lock()
            box.add(message)
            box.flush()
        finally:
            box.unlock()
            box.close()

    async def send(self, message: EmailMessage) -> None:
        async with self._lock:
            try:
                await asyncio.to_thread(self._append, message)
            except OSError as exc:
                raise MailError(f"cannot write mailbox {self.path}: {exc}") from exc


class SmtpMailer:
    def __init__(self, config: MailConfig, *, tls_context: ssl.SSLContext | None = None) -> None:
        self.config = config
        self.tls_context = tls_context

    async def send(self, message: EmailMessage) -> None:
        cfg = self.config
        context = self.tls_context
        if context is None and cfg.smtp_ca_file:
            # Read per send: a renewed private CA file takes effect without a restart.
            try:
                context = ssl.create_default_context(cafile=cfg.smtp_ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise MailError(f"mail.smtp_ca_file {cfg.smtp_ca_file!r}: {exc}") from exc
        try:
            await aiosmtplib.send(
                message,
                hostname=cfg.smtp_host,
                port=cfg.smtp_port,
                username=cfg.smtp_username or None,
                password=cfg.smtp_password or None,
                use_tls=cfg.smtp_tls is SmtpTls.IMPLICIT,
                start_tls=cfg.smtp_tls is SmtpTls.STARTTLS,
                tls_context=context,
                timeout=cfg.smtp_timeout_seconds,
            )
        except aiosmtplib.SMTPException as exc:
            raise MailError(f"SMTP {cfg.smtp_host}:{cfg.smtp_port}: {exc}") from exc
        except OSError as exc:
            raise MailError(f"SMTP {cfg.smtp_host}:{cfg.smtp_port}: {exc}") from exc


def make_mailer(config: MailConfig, mbox_path: Path) -> Mailer:
    if config.smtp_host:
        return SmtpMailer(config)
    return MboxMailer(mbox_path)
