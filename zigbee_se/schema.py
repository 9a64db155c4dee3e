"""The declarative form of an SE command: its fields in wire order, with types, limits, sentinels
and the SE version that added each optional trailing field. One definition per command drives
both the encoder and the decoder (compiler.py)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from zigbee_se.types import CharString, FieldType, FixedOctets, IntType, uint8
from zigbee_se.versions import SEVersion


class Direction(enum.IntEnum):
    """ZCL frame-control bit 3."""

    CLIENT_TO_SERVER = 0
    SERVER_TO_CLIENT = 1

    def __str__(self) -> str:
        return "client_to_server" if self is Direction.CLIENT_TO_SERVER else "server_to_client"


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""Marks a field the caller must give (it has no sentinel and no spec default)."""


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: FieldType
    since: SEVersion = SEVersion.V1_0
    optional: bool = False
    """True if a sender may stop the payload before this field (every later field is optional too)."""
    sentinel: int | None = None
    """The "not used" wire value; accepted besides [min, max] and used when the caller omits it."""
    default: Any = REQUIRED
    """Value when omitted, if there is no sentinel (e.g. Event Control 0)."""
    min: int | None = None
    max: int | None = None
    mask: int | None = None
    """For bitmaps: the bits this field may carry; others are reserved and refused on encode."""
    choices: frozenset[int] | None = None
    """For enumerations checked on encode: the defined values."""
    limit: str = ""
    """How the limit reads in an error, when [min, max] alone would not say it well."""
    doc: str = ""

    @property
    def omitted_value(self) -> Any:
        if self.sentinel is not None:
            return self.sentinel
        return self.default

    def bounds(self) -> tuple[int, int]:
        if not isinstance(self.type, IntType):
            raise TypeError(f"{self.name} is not an integer field")
        lo = self.type.min if self.min is None else self.min
        hi = self.type.max if self.max is None else self.max
        return lo, hi

    def limit_text(self) -> str:
        if self.limit:
            return self.limit
        if isinstance(self.type, CharString):
            return f"at most {self.type.max_length} bytes of UTF-8"
        if isinstance(self.type, FixedOctets):
            return f"exactly {self.type.size} bytes"
        lo, hi = self.bounds()
        text = f"{self.type.name} in {lo}..{hi}"
        if self.choices is not None:
            text = f"one of {', '.join(f'0x{c:02x}' for c in sorted(self.choices))}"
        if self.mask is not None:
            text += f" using only bits 0x{self.mask:x}"
        if self.sentinel is not None:
            text += f", or {self.sentinel} (not used)"
        return text


@dataclass(frozen=True, slots=True)
class NibblePair:
    """Two 4-bit fields packed in one byte: `high` in bits 4-7, `low` in bits 0-3."""

    high: Field
    low: Field
    since: SEVersion = SEVersion.V1_0
    optional: bool = False

    @property
    def name(self) -> str:
        return f"{self.high.name}+{self.low.name}"


Item = Field | NibblePair


@dataclass(frozen=True)
class CommandDef:
    cluster: int
    direction: Direction
    command_id: int
    name: str
    fields: tuple[Item, ...]
    since: SEVersion = SEVersion.V1_0
    doc: str = ""
    field_names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        names: list[str] = []
        seen_optional = False
        for item in self.fields:
            if isinstance(item, NibblePair):
                names += [item.high.name, item.low.name]
            else:
                names.append(item.name)
            if seen_optional and not item.optional:
                raise ValueError(f"{self.name}: mandatory {item.name} after an optional field")
            seen_optional = seen_optional or item.optional
            if item.since > self.since and not item.optional:
                raise ValueError(f"{self.name}: {item.name} added in a later version must be optional")
        object.__setattr__(self, "field_names", tuple(names))

    def fields_for(self, version: SEVersion) -> tuple[Item, ...]:
        return tuple(item for item in self.fields if item.since <= version)


def nibble(name: str, *, default: Any = REQUIRED, min: int = 0, doc: str = "") -> Field:
    return Field(name, uint8, default=default, min=min, max=15, limit=f"{min}..15 (4 bits)", doc=doc)
