"""Wire types of SE command fields: fixed-width integers, strings and fixed octet fields.

Each type knows its size and value range; fields (schema.py) narrow the range and add the
"not used" sentinel. Little-endian throughout, as ZCL is.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class IntType:
    """An unsigned or signed little-endian integer of 1..6 bytes, under its ZCL type name."""

    name: str
    size: int
    signed: bool
    zcl_type_id: int

    @property
    def min(self) -> int:
        return -(1 << (8 * self.size - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        return (1 << (8 * self.size - 1)) - 1 if self.signed else (1 << (8 * self.size)) - 1


@dataclass(frozen=True, slots=True)
class CharString:
    """A ZCL character string: 1-byte length, then UTF-8 bytes; length 0xFF means "invalid"."""

    max_length: int = 254
    name: str = "char_string"
    size: int = -1  # variable

    def __post_init__(self) -> None:
        if not 0 <= self.max_length <= 254:
            raise ValueError("a ZCL string holds at most 254 bytes (0xff marks invalid)")


@dataclass(frozen=True, slots=True)
class FixedOctets:
    """A fixed-size octet field with no length prefix (e.g. the 42-byte DRLC signature)."""

    size: int
    name: str = "octets"


uint8 = IntType("uint8", 1, False, 0x20)
uint16 = IntType("uint16", 2, False, 0x21)
uint24 = IntType("uint24", 3, False, 0x22)
uint32 = IntType("uint32", 4, False, 0x23)
uint48 = IntType("uint48", 6, False, 0x25)
int8 = IntType("int8", 1, True, 0x28)
int16 = IntType("int16", 2, True, 0x29)
int24 = IntType("int24", 3, True, 0x2A)
map8 = IntType("map8", 1, False, 0x18)
map16 = IntType("map16", 2, False, 0x19)
enum8 = IntType("enum8", 1, False, 0x30)
utc_time = IntType("UTCTime", 4, False, 0xE2)

FieldType = IntType | CharString | FixedOctets
