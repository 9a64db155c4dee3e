"""The ZCL frame header (SE_FRAMES.md §1.1): frame control, optional manufacturer code, TSN and
command id."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from zigbee_se.errors import DecodeError, EncodeError
from zigbee_se.schema import Direction


class FrameType(enum.IntEnum):
    GLOBAL = 0  # profile-wide: Read Attributes, Report Attributes, Default Response...
    CLUSTER = 1  # cluster-specific: PublishPrice, LoadControlEvent, DisplayMessage...


FC_MANUFACTURER_SPECIFIC = 0x04
FC_DIRECTION_SERVER_TO_CLIENT = 0x08
FC_DISABLE_DEFAULT_RESPONSE = 0x10


@dataclass(frozen=True, slots=True)
class ZCLHeader:
    frame_type: FrameType
    direction: Direction
    tsn: int
    command_id: int
    disable_default_response: bool = False
    manufacturer_code: int | None = None

    @property
    def size(self) -> int:
        return 3 if self.manufacturer_code is None else 5

    def encode(self) -> bytes:
        return encode_header(
            self.frame_type, self.direction, self.tsn, self.command_id,
            disable_default_response=self.disable_default_response,
            manufacturer_code=self.manufacturer_code,
        )


def encode_header(
    frame_type: FrameType,
    direction: Direction,
    tsn: int,
    command_id: int,
    *,
    disable_default_response: bool = False,
    manufacturer_code: int | None = None,
) -> bytes:
    if isinstance(tsn, bool) or not isinstance(tsn, int) or not 0 <= tsn <= 0xFF:
        raise EncodeError("tsn", tsn, "uint8 in 0..255")
    fc = int(frame_type) | (FC_DIRECTION_SERVER_TO_CLIENT if direction else 0)
    if disable_default_response:
        fc |= FC_DISABLE_DEFAULT_RESPONSE
    if manufacturer_code is None:
        return bytes((fc, tsn, command_id))
    if (
        isinstance(manufacturer_code, bool)
        or not isinstance(manufacturer_code, int)
        or not 0 <= manufacturer_code <= 0xFFFF
    ):
        raise EncodeError("manufacturer_code", manufacturer_code, "uint16 in 0..0xffff")
    fc |= FC_MANUFACTURER_SPECIFIC
    return bytes((fc, manufacturer_code & 0xFF, manufacturer_code >> 8, tsn, command_id))


def decode_header(frame: bytes) -> ZCLHeader:
    n = len(frame)
    if n < 1:
        raise DecodeError(0, "frame control: empty frame")
    fc = frame[0]
    frame_type = fc & 0x03
    if frame_type > 1:
        raise DecodeError(0, f"frame control 0x{fc:02x}: reserved frame type {frame_type}")
    if fc & FC_MANUFACTURER_SPECIFIC:
        if n < 5:
            raise DecodeError(n, f"header: manufacturer-specific frame needs 5 bytes, has {n}")
        mfr: int | None = frame[1] | frame[2] << 8
        tsn, cmd = frame[3], frame[4]
    else:
        if n < 3:
            raise DecodeError(n, f"header: needs 3 bytes, has {n}")
        mfr = None
        tsn, cmd = frame[1], frame[2]
    return ZCLHeader(
        FrameType(frame_type),
        Direction.SERVER_TO_CLIENT if fc & FC_DIRECTION_SERVER_TO_CLIENT else Direction.CLIENT_TO_SERVER,
        tsn,
        cmd,
        bool(fc & FC_DISABLE_DEFAULT_RESPONSE),
        mfr,
    )
