"""Typed codec errors. Nothing else may escape the encoder's validation or a decoder."""

from __future__ import annotations

from typing import Any


class SECodecError(ValueError):
    """Base of every error the codec raises on bad input."""


class EncodeError(SECodecError):
    """A value cannot be encoded: names the field, the value and the limit it broke."""

    def __init__(self, field: str, value: Any, limit: str) -> None:
        self.field = field
        self.value = value
        self.limit = limit
        super().__init__(f"{field}: {value!r} is invalid: {limit}")


class DecodeError(SECodecError):
    """Bytes cannot be decoded: names the offset in the frame and the reason."""

    def __init__(self, offset: int, reason: str) -> None:
        self.offset = offset
        self.reason = reason
        super().__init__(f"offset {offset}: {reason}")
