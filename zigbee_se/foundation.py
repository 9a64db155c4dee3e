"""Profile-wide (global) ZCL commands used around the SE clusters: Read Attributes (0x00), Read
Attributes Response (0x01), Report Attributes (0x0a) and Default Response (0x0b).

Their payloads are lists of typed records, so they are written as small functions rather than
field tables; values are (de)serialized by ZCL data type id (attributes.DATA_TYPES)."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from zigbee_se.attributes import DATA_TYPES, FLOAT_CODES, attribute_by_name, find_attribute
from zigbee_se.errors import DecodeError, EncodeError
from zigbee_se.schema import Direction

READ_ATTRIBUTES = 0x00
READ_ATTRIBUTES_RESPONSE = 0x01
WRITE_ATTRIBUTES = 0x02
WRITE_ATTRIBUTES_RESPONSE = 0x04
REPORT_ATTRIBUTES = 0x0A
DEFAULT_RESPONSE = 0x0B

STATUS_SUCCESS = 0x00
STATUS_UNSUPPORTED_ATTRIBUTE = 0x86


@dataclass(frozen=True, slots=True)
class GlobalCommand:
    command_id: int
    name: str
    default_direction: Direction
    encode: Callable[[int, bool, Mapping[str, Any]], bytes]
    """(cluster, server-side attributes?, fields) -> payload"""
    decode: Callable[[int, bool, bytes, int], tuple[dict[str, Any], int]]
    """(cluster, server-side attributes?, frame, payload offset) -> (fields, end offset)"""
    field_names: tuple[str, ...]


# ----------------------------------------------------------------------------- values by type


def encode_value(type_id: int, value: Any, field: str) -> bytes:
    spec = DATA_TYPES.get(type_id)
    if spec is None or type_id in (0x00, 0xFF):
        raise EncodeError(field, type_id, "a supported ZCL data type id")
    _name, size, kind = spec
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


# ----------------------------------------------------------------------------- records


def _attr_id(cluster: int, server: bool, record: Mapping[str, Any], where: str) -> int:
    ident = record.get("attribute_id", record.get("attribute"))
    if isinstance(ident, str):
        found = attribute_by_name(cluster, ident, server=server)
        if found is None:
            raise EncodeError(f"{where}.attribute_id", ident, "a known attribute name or a uint16 id")
        return found.attribute_id
    if isinstance(ident, bool) or not isinstance(ident, int) or not 0 <= ident <= 0xFFFF:
        raise EncodeError(f"{where}.attribute_id", ident, "uint16 in 0..0xffff or a known name")
    return ident


def _data_type(cluster: int, server: bool, attr_id: int, record: Mapping[str, Any], where: str) -> int:
    known = find_attribute(cluster, attr_id, server=server)
    given = record.get("data_type")
    if given is None:
        if known is None:
            raise EncodeError(f"{where}.data_type", None, "required for an attribute this codec does not know")
        return known.data_type
    if isinstance(given, bool) or not isinstance(given, int) or given not in DATA_TYPES:
        raise EncodeError(f"{where}.data_type", given, "a supported ZCL data type id")
    if known is not None and known.data_type != given:
        raise EncodeError(
            f"{where}.data_type", given, f"0x{known.data_type:02x} for attribute {known.name}"
        )
    return given


def _records(fields: Mapping[str, Any], key: str) -> Sequence[Mapping[str, Any]]:
    records = fields.get(key)
    if not isinstance(records, list | tuple) or not all(isinstance(r, Mapping) for r in records):
        raise EncodeError(key, records, "a list of objects")
    return records


def _check_keys(fields: Mapping[str, Any], allowed: tuple[str, ...], command: str) -> None:
    for name in fields:
        if name not in allowed:
            raise EncodeError(name, fields[name], f"not a field of {command} (fields: {', '.join(allowed)})")


def _enc_read(cluster: int, server: bool, fields: Mapping[str, Any]) -> bytes:
    _check_keys(fields, ("attribute_ids",), "read_attributes")
    ids = fields.get("attribute_ids")
    if not isinstance(ids, list | tuple):
        raise EncodeError("attribute_ids", ids, "a list of attribute ids or names")
    out = bytearray()
    for i, ident in enumerate(ids):
        out += _attr_id(cluster, server, {"attribute_id": ident}, f"attribute_ids[{i}]").to_bytes(2, "little")
    return bytes(out)


def _dec_read(cluster: int, server: bool, data: bytes, o: int) -> tuple[dict[str, Any], int]:
    n = len(data)
    if (n - o) % 2:
        raise DecodeError(n - 1, "attribute_ids: odd number of bytes (ids are uint16)")
    ids = [data[i] | data[i + 1] << 8 for i in range(o, n, 2)]
    return {"attribute_ids": ids}, n


def _enc_read_response(cluster: int, server: bool, fields: Mapping[str, Any]) -> bytes:
    _check_keys(fields, ("records",), "read_attributes_response")
    out = bytearray()
    for i, record in enumerate(_records(fields, "records")):
        where = f"records[{i}]"
        attr_id = _attr_id(cluster, server, record, where)
        status = record.get("status", STATUS_SUCCESS)
        if isinstance(status, bool) or not isinstance(status, int) or not 0 <= status <= 0xFF:
            raise EncodeError(f"{where}.status", status, "a ZCL status uint8")
        out += attr_id.to_bytes(2, "little") + bytes((status,))
        if status == STATUS_SUCCESS:
            out += _typed_value(cluster, server, attr_id, record, where)
    return bytes(out)


def _typed_value(cluster: int, server: bool, attr_id: int, record: Mapping[str, Any], where: str) -> bytes:
    """The data type byte and the value of one attribute record."""
    type_id = _data_type(cluster, server, attr_id, record, where)
    return bytes((type_id,)) + encode_value(type_id, record.get("value"), f"{where}.value")


def _named(cluster: int, server: bool, attr_id: int, record: dict[str, Any]) -> dict[str, Any]:
    known = find_attribute(cluster, attr_id, server=server)
    if known is not None:
        record["name"] = known.name
    return record


def _dec_read_response(cluster: int, server: bool, data: bytes, o: int) -> tuple[dict[str, Any], int]:
    n = len(data)
    records = []
    while o < n:
        if n - o < 3:
            raise DecodeError(o, f"read attributes record needs 3 bytes, {n - o} remain")
        attr_id, status = data[o] | data[o + 1] << 8, data[o + 2]
        o += 3
        record: dict[str, Any] = {"attribute_id": attr_id, "status": status}
        if status == STATUS_SUCCESS:
            if o >= n:
                raise DecodeError(o, f"attribute 0x{attr_id:04x}: data type missing")
            type_id = data[o]
            o += 1
            record["data_type"] = type_id
            record["value"], o = decode_value(type_id, data, o)
        records.append(_named(cluster, server, attr_id, record))
    return {"records": records}, o


def _enc_report(cluster: int, server: bool, fields: Mapping[str, Any]) -> bytes:
    _check_keys(fields, ("records",), "report_attributes/write_attributes")
    out = bytearray()
    for i, record in enumerate(_records(fields, "records")):
        where = f"records[{i}]"
        attr_id = _attr_id(cluster, server, record, where)
        out += attr_id.to_bytes(2, "little") + _typed_value(cluster, server, attr_id, record, where)
    return bytes(out)


def _dec_report(cluster: int, server: bool, data: bytes, o: int) -> tuple[dict[str, Any], int]:
    n = len(data)
    records = []
    while o < n:
        if n - o < 3:
            raise DecodeError(o, f"report record needs 3 bytes, {n - o} remain")
        attr_id, type_id = data[o] | data[o + 1] << 8, data[o + 2]
        o += 3
        record: dict[str, Any] = {"attribute_id": attr_id, "data_type": type_id}
        record["value"], o = decode_value(type_id, data, o)
        records.append(_named(cluster, server, attr_id, record))
    return {"records": records}, o


def _enc_write_response(cluster: int, server: bool, fields: Mapping[str, Any]) -> bytes:
    """ZCL 07-5123 §2.5.5: a status record (status, attribute id) for each attribute NOT written;
    when all were written, one SUCCESS status byte and nothing else. Records of written attributes
    are accepted (a device reports what it did) and left out of the frame."""
    _check_keys(fields, ("records",), "write_attributes_response")
    out = bytearray()
    for i, record in enumerate(_records(fields, "records")):
        where = f"records[{i}]"
        status = record.get("status", STATUS_SUCCESS)
        if isinstance(status, bool) or not isinstance(status, int) or not 0 <= status <= 0xFF:
            raise EncodeError(f"{where}.status", status, "a ZCL status uint8")
        if status != STATUS_SUCCESS:
            out.append(status)
            out += _attr_id(cluster, server, record, where).to_bytes(2, "little")
    return bytes(out) if out else bytes((STATUS_SUCCESS,))


def _dec_write_response(cluster: int, server: bool, data: bytes, o: int) -> tuple[dict[str, Any], int]:
    n = len(data)
    if n - o == 1 and data[o] == STATUS_SUCCESS:
        return {"records": [{"status": STATUS_SUCCESS}]}, n
    if n == o:
        raise DecodeError(o, "write attributes response needs at least one status record")
    if (n - o) % 3:
        # e.g. a SUCCESS byte per written attribute among the failures: the records cannot be told apart
        raise DecodeError(o, f"write attributes response of {n - o} bytes is neither one SUCCESS status "
                             "nor 3-byte (status, attribute id) records")
    records = []
    while o < n:
        # A SUCCESS record with its attribute id is not what ZCL sends, but unambiguous: kept.
        status, attr_id = data[o], data[o + 1] | data[o + 2] << 8
        records.append(_named(cluster, server, attr_id, {"status": status, "attribute_id": attr_id}))
        o += 3
    return {"records": records}, o


def _enc_default_response(cluster: int, server: bool, fields: Mapping[str, Any]) -> bytes:
    _check_keys(fields, ("command_id", "status"), "default_response")
    out = bytearray()
    for name in ("command_id", "status"):
        value = fields.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFF:
            raise EncodeError(name, value, "uint8 in 0..255")
        out.append(value)
    return bytes(out)


def _dec_default_response(cluster: int, server: bool, data: bytes, o: int) -> tuple[dict[str, Any], int]:
    if len(data) - o < 2:
        raise DecodeError(o, f"default response needs 2 bytes, {len(data) - o} remain")
    return {"command_id": data[o], "status": data[o + 1]}, o + 2


C2S, S2C = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT

GLOBAL_COMMANDS: tuple[GlobalCommand, ...] = (
    GlobalCommand(READ_ATTRIBUTES, "read_attributes", C2S, _enc_read, _dec_read, ("attribute_ids",)),
    GlobalCommand(READ_ATTRIBUTES_RESPONSE, "read_attributes_response", S2C, _enc_read_response,
                  _dec_read_response, ("records",)),
    # Write Attributes records are laid out as reports are: id, type, value.
    GlobalCommand(WRITE_ATTRIBUTES, "write_attributes", C2S, _enc_report, _dec_report, ("records",)),
    GlobalCommand(WRITE_ATTRIBUTES_RESPONSE, "write_attributes_response", S2C, _enc_write_response,
                  _dec_write_response, ("records",)),
    GlobalCommand(REPORT_ATTRIBUTES, "report_attributes", S2C, _enc_report, _dec_report, ("records",)),
    GlobalCommand(DEFAULT_RESPONSE, "default_response", C2S, _enc_default_response,
                  _dec_default_response, ("command_id", "status")),
)
GLOBAL_BY_ID = {c.command_id: c for c in GLOBAL_COMMANDS}
GLOBAL_BY_NAME = {c.name: c for c in GLOBAL_COMMANDS}
