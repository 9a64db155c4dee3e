"""The profile-wide (global) ZCL commands (ZCL 07-5123 §2.5), all 23 that ZCL and zigpy define: the
attribute commands here — Read Attributes (0x00) and its response, Write Attributes (0x02, 0x03
undivided, 0x05 no response) and its response, Report Attributes (0x0a), Default Response (0x0b) —
and the table the codec dispatches on, which adds reporting configuration (reporting.py),
discovery (discovery.py) and the structured reads and writes (structured.py).

Their payloads are lists of typed records, so they are written as small functions rather than
field tables; values are (de)serialized by ZCL data type id (values.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zigbee_se import discovery, reporting, structured
from zigbee_se.errors import DecodeError, EncodeError
from zigbee_se.records import (
    STATUS_SUCCESS,
    Decode,
    Encode,
    GlobalCommand,
    attribute_id,
    check_keys,
    named,
    need,
    records,
    status,
    typed_value,
)
from zigbee_se.schema import Direction
from zigbee_se.values import decode_value

READ_ATTRIBUTES = 0x00
READ_ATTRIBUTES_RESPONSE = 0x01
WRITE_ATTRIBUTES = 0x02
WRITE_ATTRIBUTES_UNDIVIDED = 0x03
WRITE_ATTRIBUTES_RESPONSE = 0x04
WRITE_ATTRIBUTES_NO_RESPONSE = 0x05
REPORT_ATTRIBUTES = 0x0A
DEFAULT_RESPONSE = 0x0B


def _enc_read(cluster: int, server: bool, fields: Mapping[str, Any]) -> bytes:
    check_keys(fields, ("attribute_ids",), "read_attributes")
    ids = fields.get("attribute_ids")
    if not isinstance(ids, list | tuple):
        raise EncodeError("attribute_ids", ids, "a list of attribute ids or names")
    out = bytearray()
    for i, ident in enumerate(ids):
        out += attribute_id(cluster, server, {"attribute_id": ident}, f"attribute_ids[{i}]").to_bytes(2, "little")
    return bytes(out)


def _dec_read(cluster: int, server: bool, data: bytes, o: int) -> tuple[dict[str, Any], int]:
    n = len(data)
    if (n - o) % 2:
        raise DecodeError(n - 1, "attribute_ids: odd number of bytes (ids are uint16)")
    ids = [data[i] | data[i + 1] << 8 for i in range(o, n, 2)]
    return {"attribute_ids": ids}, n


def _enc_read_response(cluster: int, server: bool, fields: Mapping[str, Any]) -> bytes:
    check_keys(fields, ("records",), "read_attributes_response")
    out = bytearray()
    for i, record in enumerate(records(fields)):
        where = f"records[{i}]"
        attr_id = attribute_id(cluster, server, record, where)
        code = status(record, where)
        out += attr_id.to_bytes(2, "little") + bytes((code,))
        if code == STATUS_SUCCESS:
            out += typed_value(cluster, server, attr_id, record, where)
    return bytes(out)


def _dec_read_response(cluster: int, server: bool, data: bytes, o: int) -> tuple[dict[str, Any], int]:
    n = len(data)
    found = []
    while o < n:
        need(data, o, 3, "read attributes record")
        attr_id, code = data[o] | data[o + 1] << 8, data[o + 2]
        o += 3
        record: dict[str, Any] = {"attribute_id": attr_id, "status": code}
        if code == STATUS_SUCCESS:
            if o >= n:
                raise DecodeError(o, f"attribute 0x{attr_id:04x}: data type missing")
            type_id = data[o]
            o += 1
            record["data_type"] = type_id
            record["value"], o = decode_value(type_id, data, o)
        found.append(named(cluster, server, attr_id, record))
    return {"records": found}, o


def _value_records(command: str) -> Encode:
    """Write Attributes (all three) and Report Attributes: records of id, type, value."""

    def encode(cluster: int, server: bool, fields: Mapping[str, Any]) -> bytes:
        check_keys(fields, ("records",), command)
        out = bytearray()
        for i, record in enumerate(records(fields)):
            where = f"records[{i}]"
            attr_id = attribute_id(cluster, server, record, where)
            out += attr_id.to_bytes(2, "little") + typed_value(cluster, server, attr_id, record, where)
        return bytes(out)

    return encode


def _dec_value_records(cluster: int, server: bool, data: bytes, o: int) -> tuple[dict[str, Any], int]:
    n = len(data)
    found = []
    while o < n:
        need(data, o, 3, "attribute record")
        attr_id, type_id = data[o] | data[o + 1] << 8, data[o + 2]
        o += 3
        record: dict[str, Any] = {"attribute_id": attr_id, "data_type": type_id}
        record["value"], o = decode_value(type_id, data, o)
        found.append(named(cluster, server, attr_id, record))
    return {"records": found}, o


def _enc_write_response(cluster: int, server: bool, fields: Mapping[str, Any]) -> bytes:
    """ZCL 07-5123 §2.5.5: a status record (status, attribute id) for each attribute NOT written;
    when all were written, one SUCCESS status byte and nothing else. Records of written attributes
    are accepted (a device reports what it did) and left out of the frame."""
    check_keys(fields, ("records",), "write_attributes_response")
    out = bytearray()
    for i, record in enumerate(records(fields)):
        where = f"records[{i}]"
        code = status(record, where)
        if code != STATUS_SUCCESS:
            out.append(code)
            out += attribute_id(cluster, server, record, where).to_bytes(2, "little")
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
    found = []
    while o < n:
        # A SUCCESS record with its attribute id is not what ZCL sends, but unambiguous: kept.
        code, attr_id = data[o], data[o + 1] | data[o + 2] << 8
        found.append(named(cluster, server, attr_id, {"status": code, "attribute_id": attr_id}))
        o += 3
    return {"records": found}, o


def _enc_default_response(cluster: int, server: bool, fields: Mapping[str, Any]) -> bytes:
    check_keys(fields, ("command_id", "status"), "default_response")
    out = bytearray()
    for name in ("command_id", "status"):
        value = fields.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFF:
            raise EncodeError(name, value, "uint8 in 0..255")
        out.append(value)
    return bytes(out)


def _dec_default_response(cluster: int, server: bool, data: bytes, o: int) -> tuple[dict[str, Any], int]:
    need(data, o, 2, "default response")
    return {"command_id": data[o], "status": data[o + 1]}, o + 2


C2S, S2C = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT


def _request(command_id: int, name: str, encode: Encode, decode: Decode,
             fields: tuple[str, ...]) -> GlobalCommand:
    return GlobalCommand(command_id, name, C2S, encode, decode, fields, names_receiver_attributes=True)


def _answer(command_id: int, name: str, encode: Encode, decode: Decode,
            fields: tuple[str, ...]) -> GlobalCommand:
    return GlobalCommand(command_id, name, S2C, encode, decode, fields, names_receiver_attributes=False)


RECORDS = ("records",)
DISCOVERY_ANSWER = ("discovery_complete", "records")

GLOBAL_COMMANDS: tuple[GlobalCommand, ...] = (
    _request(READ_ATTRIBUTES, "read_attributes", _enc_read, _dec_read, ("attribute_ids",)),
    _answer(READ_ATTRIBUTES_RESPONSE, "read_attributes_response", _enc_read_response, _dec_read_response,
            RECORDS),
    _request(WRITE_ATTRIBUTES, "write_attributes", _value_records("write_attributes"), _dec_value_records,
             RECORDS),
    _request(WRITE_ATTRIBUTES_UNDIVIDED, "write_attributes_undivided",
             _value_records("write_attributes_undivided"), _dec_value_records, RECORDS),
    _answer(WRITE_ATTRIBUTES_RESPONSE, "write_attributes_response", _enc_write_response, _dec_write_response,
            RECORDS),
    _request(WRITE_ATTRIBUTES_NO_RESPONSE, "write_attributes_no_response",
             _value_records("write_attributes_no_response"), _dec_value_records, RECORDS),
    _request(0x06, "configure_reporting", reporting.encode_configure, reporting.decode_configure, RECORDS),
    _answer(0x07, "configure_reporting_response", reporting.encode_configure_response,
            reporting.decode_configure_response, RECORDS),
    _request(0x08, "read_reporting_configuration", reporting.encode_read_configuration,
             reporting.decode_read_configuration, RECORDS),
    _answer(0x09, "read_reporting_configuration_response", reporting.encode_read_configuration_response,
            reporting.decode_read_configuration_response, RECORDS),
    _answer(REPORT_ATTRIBUTES, "report_attributes", _value_records("report_attributes"), _dec_value_records,
            RECORDS),
    # Default Response goes both ways; encode_frame takes the direction.
    GlobalCommand(DEFAULT_RESPONSE, "default_response", C2S, _enc_default_response, _dec_default_response,
                  ("command_id", "status"), names_receiver_attributes=False),
    _request(0x0C, "discover_attributes", discovery.encode_attributes_request,
             discovery.decode_attributes_request, discovery.ATTRIBUTES_REQUEST),
    _answer(0x0D, "discover_attributes_response", discovery.encode_attributes_answer,
            discovery.decode_attributes_answer, DISCOVERY_ANSWER),
    _request(0x0E, "read_attributes_structured", structured.encode_read, structured.decode_read, RECORDS),
    _request(0x0F, "write_attributes_structured", structured.encode_write, structured.decode_write, RECORDS),
    _answer(0x10, "write_attributes_structured_response", structured.encode_write_response,
            structured.decode_write_response, RECORDS),
    _request(0x11, "discover_commands_received", discovery.encode_commands_request,
             discovery.decode_commands_request, discovery.COMMANDS_REQUEST),
    _answer(0x12, "discover_commands_received_response", discovery.encode_commands_answer,
            discovery.decode_commands_answer, discovery.COMMANDS_ANSWER),
    _request(0x13, "discover_commands_generated", discovery.encode_commands_request,
             discovery.decode_commands_request, discovery.COMMANDS_REQUEST),
    _answer(0x14, "discover_commands_generated_response", discovery.encode_commands_answer,
            discovery.decode_commands_answer, discovery.COMMANDS_ANSWER),
    _request(0x15, "discover_attributes_extended", discovery.encode_attributes_request,
             discovery.decode_attributes_request, discovery.ATTRIBUTES_REQUEST),
    _answer(0x16, "discover_attributes_extended_response", discovery.encode_extended_answer,
            discovery.decode_extended_answer, DISCOVERY_ANSWER),
)
GLOBAL_BY_ID = {c.command_id: c for c in GLOBAL_COMMANDS}
GLOBAL_BY_NAME = {c.name: c for c in GLOBAL_COMMANDS}
