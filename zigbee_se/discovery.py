"""Discovery global commands (ZCL 07-5123 rev 6 §2.5.13-2.5.14, §2.5.18-2.5.23): Discover
Attributes (0x0c) and its extended form (0x15) ask for attribute ids from a start id; Discover
Commands Received (0x11) and Generated (0x13) for command ids. Each answer starts with Discovery
Complete (a Boolean: no more to ask for) and lists what the receiver has."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zigbee_se.errors import DecodeError, EncodeError
from zigbee_se.records import (
    attribute_id,
    check_keys,
    data_type,
    flag,
    named,
    need,
    read_flag,
    records,
    uint,
)

ATTRIBUTES_REQUEST = ("start_attribute_id", "max_attribute_ids")
COMMANDS_REQUEST = ("start_command_id", "max_command_ids")
COMMANDS_ANSWER = ("discovery_complete", "command_ids")
_ANSWER = ("discovery_complete", "records")

ACCESS_READ, ACCESS_WRITE, ACCESS_REPORT = 0x01, 0x02, 0x04
"""The extended answer's attribute access control bits."""


def encode_attributes_request(cluster: int, server: bool, fields: Mapping[str, Any]) -> bytes:
    check_keys(fields, ATTRIBUTES_REQUEST, "discover_attributes")
    start = attribute_id(cluster, server, {"attribute_id": fields.get("start_attribute_id")}, "start")
    return start.to_bytes(2, "little") + uint(fields.get("max_attribute_ids"), 1, "max_attribute_ids")


def decode_attributes_request(cluster: int, server: bool, data: bytes, o: int) -> tuple[dict[str, Any], int]:
    need(data, o, 3, "discover attributes")
    return {"start_attribute_id": data[o] | data[o + 1] << 8, "max_attribute_ids": data[o + 2]}, o + 3


def _encode_answer(cluster: int, server: bool, fields: Mapping[str, Any], extended: bool) -> bytes:
    command = "discover_attributes_extended_response" if extended else "discover_attributes_response"
    check_keys(fields, _ANSWER, command)
    out = bytearray(flag(fields.get("discovery_complete"), "discovery_complete"))
    for i, record in enumerate(records(fields)):
        where = f"records[{i}]"
        attr_id = attribute_id(cluster, server, record, where)
        # Only the type id travels, so arrays, structures, sets and bags can be announced too.
        type_id = data_type(cluster, server, attr_id, record, where, collections=True)
        out += attr_id.to_bytes(2, "little") + bytes((type_id,))
        if extended:
            out += uint(record.get("access_control"), 1, f"{where}.access_control")
    return bytes(out)


def _decode_answer(
    cluster: int, server: bool, data: bytes, o: int, extended: bool
) -> tuple[dict[str, Any], int]:
    complete = read_flag(data, o, "discovery_complete")
    o += 1
    size = 4 if extended else 3
    if (len(data) - o) % size:
        raise DecodeError(o, f"attribute information records are {size} bytes; {len(data) - o} remain")
    found = []
    for i in range(o, len(data), size):
        attr_id = data[i] | data[i + 1] << 8
        record: dict[str, Any] = {"attribute_id": attr_id, "data_type": data[i + 2]}
        if extended:
            record["access_control"] = data[i + 3]
        found.append(named(cluster, server, attr_id, record))
    return {"discovery_complete": complete, "records": found}, len(data)


def encode_attributes_answer(cluster: int, server: bool, fields: Mapping[str, Any]) -> bytes:
    return _encode_answer(cluster, server, fields, extended=False)


def decode_attributes_answer(cluster: int, server: bool, data: bytes, o: int) -> tuple[dict[str, Any], int]:
    return _decode_answer(cluster, server, data, o, extended=False)


def encode_extended_answer(cluster: int, server: bool, fields: Mapping[str, Any]) -> bytes:
    return _encode_answer(cluster, server, fields, extended=True)


def decode_extended_answer(cluster: int, server: bool, data: bytes, o: int) -> tuple[dict[str, Any], int]:
    return _decode_answer(cluster, server, data, o, extended=True)


def encode_commands_request(cluster: int, server: bool, fields: Mapping[str, Any]) -> bytes:
    check_keys(fields, COMMANDS_REQUEST, "discover_commands_received/generated")
    return uint(fields.get("start_command_id"), 1, "start_command_id") + uint(
        fields.get("max_command_ids"), 1, "max_command_ids"
    )


def decode_commands_request(cluster: int, server: bool, data: bytes, o: int) -> tuple[dict[str, Any], int]:
    need(data, o, 2, "discover commands")
    return {"start_command_id": data[o], "max_command_ids": data[o + 1]}, o + 2


def encode_commands_answer(cluster: int, server: bool, fields: Mapping[str, Any]) -> bytes:
    check_keys(fields, COMMANDS_ANSWER, "discover_commands_received/generated_response")
    ids = fields.get("command_ids")
    if not isinstance(ids, list | tuple):
        raise EncodeError("command_ids", ids, "a list of command ids (uint8)")
    out = bytearray(flag(fields.get("discovery_complete"), "discovery_complete"))
    for i, ident in enumerate(ids):
        out += uint(ident, 1, f"command_ids[{i}]")
    return bytes(out)


def decode_commands_answer(cluster: int, server: bool, data: bytes, o: int) -> tuple[dict[str, Any], int]:
    complete = read_flag(data, o, "discovery_complete")
    return {"discovery_complete": complete, "command_ids": list(data[o + 1 :])}, len(data)
