"""EUI-64 and install-code helpers shared by devices, meters and the fleet.

EUI-64s cross the simulator interfaces as 8 ``bytes`` in **over-the-air (little-endian) order**,
exactly as zigpy serializes ``EUI64``; ``eui64_str`` gives the usual big-endian colon form.
"""

from __future__ import annotations

import zigpy.types as zt
import zigpy.util

from simulators.errors import SimulatorError
from zigbee_se.install_code import expected_crc

INSTALL_CODE_LENGTHS = (8, 10, 14, 18)


def eui64_from_str(text: str) -> bytes:
    """'00:0d:6f:00:0a:bc:de:f0' (display order) -> 8 bytes on-air order."""
    try:
        return bytes(zt.EUI64.convert(text).serialize())
    except (ValueError, TypeError) as exc:
        raise SimulatorError("eui64", text, "16 hex digits, e.g. 00:0d:6f:00:0a:bc:de:f0") from exc


def eui64_str(eui64: bytes) -> str:
    return str(zt.EUI64(eui64))


def check_eui64(eui64: bytes) -> bytes:
    if not isinstance(eui64, bytes | bytearray) or len(eui64) != 8:
        raise SimulatorError("eui64", eui64, "8 bytes (on-air, little-endian order)")
    return bytes(eui64)


def link_key_from_install_code(code: bytes) -> bytes:
    """AES-MMO link key of an install code incl. its CRC; zigpy checks the CRC (X-25)."""
    if len(code) not in INSTALL_CODE_LENGTHS:
        raise SimulatorError("install_code", code.hex(), f"length in {INSTALL_CODE_LENGTHS} bytes")
    try:
        return bytes(zigpy.util.convert_install_code(bytes(code)))
    except ValueError as exc:
        raise SimulatorError(
            "install_code", code.hex(), "CRC-16/X-25 of the code must match") from exc


def install_code_with_crc(random_part: bytes) -> bytes:
    """Append the little-endian CRC-16/X-25 (zigbee_se's) to 6/8/12/16 random bytes."""
    if len(random_part) + 2 not in INSTALL_CODE_LENGTHS:
        raise SimulatorError("install_code", random_part.hex(), "6, 8, 12 or 16 bytes before CRC")
    return bytes(random_part) + expected_crc(bytes(random_part))
