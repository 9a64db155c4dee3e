"""The keys behind the page session cookie and the customer's emailed links.

Both are Fernet tokens (AES-CBC + HMAC-SHA256 with a timestamp, from `cryptography`): the contents
are authenticated *and* unreadable, so a customer link does not show the e-mail address it stands
for, and the age check is the library's. One operator secret; HKDF derives one key per use, so a
session cookie can never be replayed as a customer link or the other way round.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.config import GatewayConfig

SECRET_FILE = "pages-secret"


def _fernet(secret: bytes, purpose: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"hangw pages {purpose}".encode()).derive(secret)
    return Fernet(base64.urlsafe_b64encode(key))


def load_secret(config: GatewayConfig) -> bytes:
    """The configured secret, else the one in the data directory (made once, readable by its owner only)."""
    if config.pages.session_secret:
        return config.pages.session_secret.encode()
    path = config.data_dir / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # O_EXCL: two instances starting at once on one data directory keep the first one's
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w", encoding="ascii") as out:
                out.write(secrets.token_urlsafe(48) + "\n")
    value = Path(path).read_text(encoding="ascii").strip()
    if len(value) < 32:
        raise ValueError(f"{path}: the pages secret is {len(value)} characters; at least 32")
    return value.encode()


class LinkProblem(StrEnum):
    INVALID = "invalid"  # not made by this gateway, or altered
    EXPIRED = "expired"


class LinkRefused(Exception):
    def __init__(self, problem: LinkProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


@dataclass(frozen=True)
class PageKeys:
    session: Fernet
    link: Fernet
    link_seconds: int
    session_seconds: int

    @classmethod
    def from_config(cls, config: GatewayConfig) -> PageKeys:
        secret = load_secret(config)
        return cls(_fernet(secret, "session"), _fernet(secret, "customer link"),
                   config.pages.customer_link_days * 86400, int(config.pages.session_hours * 3600))

    def customer_link_token(self, email: str, now: datetime) -> str:
        """The token of a customer's "all my agreements" link: their address, sealed, dated `now`."""
        # Without base64's "=" padding: a link ends with a letter, digit, - or _, so a mail client
        # that linkifies the URL takes all of it.
        return self.link.encrypt_at_time(email.strip().lower().encode(), int(now.timestamp())).decode().rstrip("=")

    def customer_email(self, token: str, now: datetime) -> str:
        """The address a link stands for; LinkRefused when it was altered or is too old."""
        raw = (token + "=" * (-len(token) % 4)).encode("ascii", errors="replace")
        try:
            return self.link.decrypt_at_time(raw, self.link_seconds, int(now.timestamp())).decode()
        except InvalidToken:
            pass
        try:  # authentic but old (extract_timestamp checks the signature, not the age)?
            self.link.extract_timestamp(raw)
        except InvalidToken:
            raise LinkRefused(LinkProblem.INVALID) from None
        raise LinkRefused(LinkProblem.EXPIRED)
