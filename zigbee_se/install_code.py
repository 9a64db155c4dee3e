"""Install codes: parse what a technician types or scans, check the CRC, derive the link key.

The CRC-16/X-25 check and the AES-MMO key derivation are zigpy's (`zigpy.util`), as are the QR
code formats; this module adds the input forms and errors a technician needs (which CRC was expected)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from crccheck.crc import CrcX25
from zigpy import util as zigpy_util
from zigpy.types import EUI64

from zigbee_se.errors import SECodecError

CODE_LENGTHS = (6, 8, 12, 16)
"""Random bytes before the 2-byte CRC; the whole code is 8, 10, 14 or 18 bytes."""


class InstallCodeError(SECodecError):
    """An install code that cannot be used: names the problem and, for a bad CRC, the expected one."""

    def __init__(self, code: str, reason: str, expected_crc: str | None = None) -> None:
        self.code = code
        self.reason = reason
        self.expected_crc = expected_crc
        super().__init__(f"install code {code!r}: {reason}")


@dataclass(frozen=True, slots=True)
class InstallCode:
    code: bytes
    """The whole code as the device holds it: random bytes then the CRC, little-endian."""
    eui64: str | None
    """From a QR code that carries it (as zigpy prints EUI-64s, e.g. 00:0d:6f:...), else None."""

    @property
    def crc(self) -> bytes:
        return self.code[-2:]

    @property
    def normalized(self) -> str:
        """Upper-case hex in groups of four, the way labels print it."""
        hexed = self.code.hex().upper()
        return " ".join(hexed[i : i + 4] for i in range(0, len(hexed), 4))

    @property
    def link_key(self) -> bytes:
        return bytes(zigpy_util.aes_mmo_hash(self.code))


def expected_crc(code_without_crc: bytes) -> bytes:
    crc = CrcX25()
    crc.process(code_without_crc)
    return bytes(crc.finalbytes(byteorder="little"))


_SEPARATORS = re.compile(r"[\s:\-_.]")


def parse_install_code(text: str) -> InstallCode:
    """Accepts hex with or without separators (spaces, colons, dashes), or a QR code in any format
    zigpy knows. Raises InstallCodeError for a wrong length, non-hex input or a bad CRC."""
    if not isinstance(text, str):
        raise InstallCodeError(repr(text), "must be text")
    stripped = text.strip()
    eui64 = None
    for pattern in zigpy_util.QR_CODE_FORMATS:
        match = re.search(pattern, stripped)
        if match is None or "code" not in match.groupdict() or match.group("code") is None:
            continue
        eui64 = _eui64_text(match.group("ieee"))
        stripped = match.group("code")
        break
    hexed = _SEPARATORS.sub("", stripped)
    if hexed.lower().startswith("0x"):
        hexed = hexed[2:]
    if not hexed or not re.fullmatch(r"[0-9a-fA-F]+", hexed) or len(hexed) % 2:
        raise InstallCodeError(text, "not a hex install code or a known QR code format")
    code = bytes.fromhex(hexed)
    return InstallCode(check_install_code(code, text), eui64)


def check_install_code(code: bytes, shown: str | None = None) -> bytes:
    shown = code.hex() if shown is None else shown
    if len(code) - 2 not in CODE_LENGTHS:
        raise InstallCodeError(
            shown,
            f"{len(code)} bytes; an install code is 6, 8, 12 or 16 bytes plus a 2-byte CRC "
            "(8, 10, 14 or 18 bytes in all)",
        )
    expected = expected_crc(code[:-2])
    if expected != code[-2:]:
        raise InstallCodeError(
            shown,
            f"CRC {code[-2:].hex().upper()} does not match; expected {expected.hex().upper()} "
            "(CRC-16/X-25, little-endian) — a digit was probably mistyped",
            expected_crc=expected.hex().upper(),
        )
    return code


def link_key_from_install_code(code: bytes) -> bytes:
    """The Trust Center link key for the device holding `code` (CRC included). Checks the CRC."""
    return bytes(zigpy_util.convert_install_code(check_install_code(bytes(code))))


def _eui64_text(hexed: str) -> str:
    ieee = EUI64.convert(hexed)
    # zigpy's rule: some manufacturers print the EUI-64 byte-reversed in QR codes.
    if str(ieee).lower().endswith("16:a7:20"):
        ieee = EUI64(reversed(ieee))
    return str(ieee)
