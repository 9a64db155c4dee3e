"""Link keys at rest: HAN devices' derived link keys are stored Fernet-encrypted (AES-128-CBC +
HMAC-SHA256, from `cryptography`) with a key the operator holds (`[security] device_key_secret`,
or `device_key_file`). The install code is never stored; the link key never leaves the gateway
except to the premise's route. Without a key provisioning is refused, not done in the clear.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SEALED_PREFIX = "sealed:"


class Sealer:
    """Text sealed with AES-GCM (compact: a sealed webhook secret fits its 100-character column)."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal_text(self, text: str) -> str:
        nonce = os.urandom(12)
        return SEALED_PREFIX + base64.urlsafe_b64encode(nonce + self._aead.encrypt(nonce, text.encode(), None)).decode()

    def open_text(self, stored: str) -> str:
        """`stored` as written by `seal_text`; a value written before sealing existed, as it is."""
        if not stored.startswith(SEALED_PREFIX):
            return stored
        raw = base64.urlsafe_b64decode(stored.removeprefix(SEALED_PREFIX))
        try:
            return self._aead.decrypt(raw[:12], raw[12:], None).decode()
        except InvalidTag:
            raise DeviceKeyError("device_key_secret", "(hidden)", "is not the key the stored secrets were "
                                 "sealed with") from None


class DeviceKeyError(RuntimeError):
    """No usable device key: names the setting, what is wrong with it and what it must be."""

    def __init__(self, field: str, value: str, limit: str) -> None:
        self.field, self.value, self.limit = field, value, limit
        super().__init__(f"security.{field}: {value!r}: {limit}")


def new_device_key() -> str:
    """A fresh key for `[security] device_key_secret` (urlsafe base64 of 32 random bytes)."""
    return Fernet.generate_key().decode()


class LinkKeyCipher:
    def __init__(self, secret: str) -> None:
        self._key = secret.encode()
        try:
            self._fernet = Fernet(self._key)
        except (ValueError, TypeError):
            raise DeviceKeyError("device_key_secret", "(hidden)", "a Fernet key: urlsafe base64 of 32 bytes "
                                 "(`hangw admin device-key` prints one)") from None

    def for_purpose(self, purpose: str) -> Sealer:
        """A sealer for other secrets at rest (webhook signing secrets, queued mail bodies), under a
        key derived from this one (HKDF-SHA256), so one operator key covers every secret and no
        two uses share a key."""
        raw = base64.urlsafe_b64decode(self._key)
        return Sealer(HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                           info=f"hangw {purpose}".encode()).derive(raw))

    def encrypt(self, link_key: bytes) -> str:
        return self._fernet.encrypt(link_key).decode()

    def decrypt(self, token: str) -> bytes:
        try:
            return self._fernet.decrypt(token.encode())
        except InvalidToken:
            raise DeviceKeyError("device_key_secret", "(hidden)", "is not the key the stored link keys were "
                                 "encrypted with") from None


def load_cipher(secret: str, key_file: str = "") -> LinkKeyCipher:
    """The cipher of `[security]`'s device_key_secret, or else of the key in `key_file` (its
    device_key_file); DeviceKeyError when there is no usable key. Takes the two values, not the
    config section, so this module stays below the config tree."""
    secret = secret.strip()
    if not secret and key_file:
        path = Path(key_file)
        try:
            secret = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise DeviceKeyError("device_key_file", str(path), f"a readable file holding the key ({exc})") from None
    if not secret:
        raise DeviceKeyError("device_key_secret", "", "required to provision HAN devices (link keys are stored "
                             "encrypted): set [security] device_key_secret, HANGW_SECURITY__DEVICE_KEY_SECRET or "
                             "device_key_file")
    return LinkKeyCipher(secret)
