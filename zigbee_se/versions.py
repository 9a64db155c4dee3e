"""Smart Energy profile versions, ordered so that `since <= target` selects a version's fields."""

from __future__ import annotations

import enum

from zigbee_se.errors import EncodeError


class SEVersion(enum.IntEnum):
    V1_0 = 10
    V1_1 = 11
    V1_2 = 12

    @classmethod
    def parse(cls, text: str | SEVersion) -> SEVersion:
        """Accept "1.0", "1.1", "1.2" (also "se1.1", "1.2a" style variants are refused)."""
        if isinstance(text, SEVersion):
            return text
        try:
            return _BY_TEXT[str(text).strip()]
        except KeyError:
            raise EncodeError("se_version", text, "one of 1.0, 1.1, 1.2") from None

    def __str__(self) -> str:
        return f"{self.value // 10}.{self.value % 10}"


_BY_TEXT = {"1.0": SEVersion.V1_0, "1.1": SEVersion.V1_1, "1.2": SEVersion.V1_2}
