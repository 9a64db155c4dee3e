"""ZCL attribute values by data type id (ZCL 07-5123 §2.6.2, SE_FRAMES.md §2.5): what an attribute
record, a reportable change or a structured write carries after its type byte."""

from __future__ import annotations

import math
import struct
from typing import Any

from zigbee_se.attributes import DATA_TYPES, FLOAT_CODES
from zigbee_se.errors import DecodeError, EncodeError


def encode_value(type_id: int, value: Any, field: str) -> bytes:
    spec = DATA_TYPES.get(type_id)
    if spec is None or type_id in (0x00, 0xFF):
        raise EncodeError(field, type_id, "a supported ZCL data type id")
    _name, size, kind = spec
    if value is None and (kind == "float" or size < 0):
        # The type's non-value, which the decoder gives as None (ZCL 07-5123 Table 2-10): NaN, or
        # a string length of all ones.
        return struct.pack(FLOAT_CODES[size], math.nan) if kind == "float" else b"\xff" * -size
    if kind in ("uint", "int", "bool"):
        if isinstance(value, bool) and kind != "bool":
            raise EncodeError(field, value, f"an integer for {spec[0]}")
        if not isinstance(value, int):
            raise EncodeError(field, value, f"an integer for {spec[0]}")
        lo, hi = (0, (1 << (8 * size)) - 1)
        if kind == "int":
            lo, hi = -(1 << (8 * size - 1)), (1 << (8 * size - 1)) - 1
        if not lo <= value <= hi:
            raise EncodeError(field, value, f"{spec[0]} in {lo}..{hi}")
        return int(value).to_bytes(size, "little", signed=kind == "int")
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise EncodeError(field, value, f"a number for {spec[0]}")
        try:
            return struct.pack(FLOAT_CODES[size], value)
        except (OverflowError, struct.error):
            raise EncodeError(field, value, f"representable as {spec[0]}") from None
    if kind == "string":
        if not isinstance(value, str):
            raise EncodeError(field, value, "a string")
        data = value.encode("utf-8", "strict") if value.isascii() else _utf8(field, value)
        return _prefixed(data, size, field, value)
    if kind == "octets":
        if not isinstance(value, bytes | bytearray):
            raise EncodeError(field, value, "bytes")
        if size > 0:
            if len(value) != size:
                raise EncodeError(field, value, f"exactly {size} bytes for {spec[0]}")
            return bytes(value)
        return _prefixed(bytes(value), size, field, value)
    raise EncodeError(field, type_id, "a supported ZCL data type id")  # pragma: no cover


def _utf8(field: str, value: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EncodeError(field, value, f"encodable as UTF-8 ({exc.reason})") from None


def _prefixed(data: bytes, prefix: int, field: str, value: Any) -> bytes:
    limit = 0xFE if prefix == -1 else 0xFFFE
    if len(data) > limit:
        raise EncodeError(field, value, f"at most {limit} bytes (this is {len(data)})")
    return len(data).to_bytes(-prefix, "little") + data


def decode_value(type_id: int, data: bytes, offset: int) -> tuple[Any, int]:
    spec = DATA_TYPES.get(type_id)
    if spec is None:
        raise DecodeError(offset - 1, f"data type 0x{type_id:02x} is not supported")
    name, size, kind = spec
    n = len(data)
    if size >= 0:
        if n - offset < size:
            raise DecodeError(offset, f"{name} value needs {size} bytes, {n - offset} remain")
        raw = data[offset : offset + size]
        end = offset + size
        if kind in ("uint", "bool"):
            return int.from_bytes(raw, "little"), end
        if kind == "int":
            return int.from_bytes(raw, "little", signed=True), end
        if kind == "float":
            value = struct.unpack(FLOAT_CODES[size], raw)[0]
            return (None if math.isnan(value) else value), end
        if kind == "octets":
            return bytes(raw), end
        return None, end  # nodata / unknown
    width = -size
    if n - offset < width:
        raise DecodeError(offset, f"{name} length needs {width} bytes, {n - offset} remain")
    length = int.from_bytes(data[offset : offset + width], "little")
    start = offset + width
    invalid = (1 << (8 * width)) - 1
    if length == invalid:
        return None, start
    end = start + length
    if end > n:
        raise DecodeError(offset, f"{name} length {length} but only {n - start} bytes remain")
    if kind == "octets":
        return bytes(data[start:end]), end
    try:
        return str(data[start:end], "utf-8"), end
    except UnicodeDecodeError as exc:
        raise DecodeError(start + exc.start, f"{name}: not valid UTF-8") from None
