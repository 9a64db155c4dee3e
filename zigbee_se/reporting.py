"""Reporting configuration global commands (ZCL 07-5123 §2.5.7-2.5.10): Configure Reporting (0x06)
and its response, Read Reporting Configuration (0x08) and its response.

A record's direction says whose attribute it is about: 0 — the receiver reports it (type, minimum
and maximum interval, and a reportable change for analog types only); 1 — the sender reports it and
the receiver expects a report within the timeout. Records about the other side's attributes are
named from that side's attribute table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zigbee_se.attributes import ANALOG_TYPES, COLLECTION_TYPES, DATA_TYPES
from zigbee_se.errors import DecodeError, EncodeError
from zigbee_se.records import (
    STATUS_SUCCESS,
    attribute_id,
    check_keys,
    data_type,
    named,
    need,
    records,
    status,
    uint,
)
from zigbee_se.values import decode_value, encode_value

REPORTED_BY_RECEIVER, REPORTED_BY_SENDER = 0x00, 0x01
_SEND_KEYS = ("direction", "attribute_id", "attribute", "name", "data_type", "min_interval", "max_interval",
              "reportable_change")
_EXPECT_KEYS = ("direction", "attribute_id", "attribute", "name", "timeout")


def _direction(record: Mapping[str, Any], where: str) -> int:
    value = record.get("direction", REPORTED_BY_RECEIVER)
    if isinstance(value, bool) or not isinstance(value, int) or value not in (REPORTED_BY_RECEIVER,
                                                                                REPORTED_BY_SENDER):
        raise EncodeError(f"{where}.direction", value, "0 (the receiver reports) or 1 (the receiver expects reports)")
    return int(value)


def _read_direction(data: bytes, o: int) -> int:
    if data[o] > REPORTED_BY_SENDER:
        raise DecodeError(o, f"reporting direction 0x{data[o]:02x} is reserved (0 or 1)")
    return data[o]


def _whose(server: bool, direction: int) -> bool:
    """Server-side attributes? A direction-1 record is about the other side's attribute."""
    return server if direction == REPORTED_BY_RECEIVER else not server


def _encode_configuration(cluster: int, server: bool, record: Mapping[str, Any], where: str, *,
                          direction: int, attr_id: int) -> bytes:
    """What follows direction and attribute id in a configuration record."""
    if direction == REPORTED_BY_SENDER:
        check_keys(record, _EXPECT_KEYS, f"{where} (direction 1)")
        return uint(record.get("timeout"), 2, f"{where}.timeout")
    check_keys(record, _SEND_KEYS, f"{where} (direction 0)")
    type_id = data_type(cluster, server, attr_id, record, where, collections=True)
    out = bytes((type_id,)) + uint(record.get("min_interval"), 2, f"{where}.min_interval")
    out += uint(record.get("max_interval"), 2, f"{where}.max_interval")
    change = record.get("reportable_change")
    if type_id in ANALOG_TYPES:
        return out + encode_value(type_id, change, f"{where}.reportable_change")
    if change is not None:
        raise EncodeError(f"{where}.reportable_change", change, f"absent: 0x{type_id:02x} is a discrete type")
    return out


def _decode_configuration(
    data: bytes, o: int, record: dict[str, Any], direction: int
) -> int:
    if direction == REPORTED_BY_SENDER:
        need(data, o, 2, "timeout period")
        record["timeout"] = data[o] | data[o + 1] << 8
        return o + 2
    need(data, o, 5, "reporting configuration")
    type_id = data[o]
    if type_id not in DATA_TYPES and type_id not in COLLECTION_TYPES:
        raise DecodeError(o, f"data type 0x{type_id:02x} is unknown: whether a reportable change follows is too")
    record["data_type"] = type_id
    record["min_interval"] = data[o + 1] | data[o + 2] << 8
    record["max_interval"] = data[o + 3] | data[o + 4] << 8
    o += 5
    if type_id in ANALOG_TYPES:
        record["reportable_change"], o = decode_value(type_id, data, o)
    return o


def encode_configure(cluster: int, server: bool, fields: Mapping[str, Any]) -> bytes:
    check_keys(fields, ("records",), "configure_reporting")
    out = bytearray()
    for i, record in enumerate(records(fields)):
        where = f"records[{i}]"
        direction = _direction(record, where)
        side = _whose(server, direction)
        attr_id = attribute_id(cluster, side, record, where)
        out += bytes((direction,)) + attr_id.to_bytes(2, "little")
        out += _encode_configuration(cluster, side, record, where, direction=direction, attr_id=attr_id)
    return bytes(out)


def decode_configure(cluster: int, server: bool, data: bytes, o: int) -> tuple[dict[str, Any], int]:
    found = []
    while o < len(data):
        need(data, o, 3, "attribute reporting configuration record")
        direction = _read_direction(data, o)
        attr_id = data[o + 1] | data[o + 2] << 8
        record: dict[str, Any] = {"direction": direction, "attribute_id": attr_id}
        o = _decode_configuration(data, o + 3, record, direction)
        found.append(named(cluster, _whose(server, direction), attr_id, record))
    return {"records": found}, o


def encode_configure_response(cluster: int, server: bool, fields: Mapping[str, Any]) -> bytes:
    """ZCL 07-5123 §2.5.8: a record (status, direction, attribute id) per attribute NOT configured;
    when all were, one SUCCESS status byte and nothing else."""
    check_keys(fields, ("records",), "configure_reporting_response")
    out = bytearray()
    for i, record in enumerate(records(fields)):
        where = f"records[{i}]"
        code = status(record, where)
        if code != STATUS_SUCCESS:
            direction = _direction(record, where)
            attr_id = attribute_id(cluster, _whose(server, direction), record, where)
            out += bytes((code, direction)) + attr_id.to_bytes(2, "little")
    return bytes(out) if out else bytes((STATUS_SUCCESS,))


def decode_configure_response(cluster: int, server: bool, data: bytes, o: int) -> tuple[dict[str, Any], int]:
    n = len(data)
    if n - o == 1 and data[o] == STATUS_SUCCESS:
        return {"records": [{"status": STATUS_SUCCESS}]}, n
    if n == o or (n - o) % 4:
        raise DecodeError(o, f"configure reporting response of {n - o} bytes is neither one SUCCESS status "
                             "nor 4-byte (status, direction, attribute id) records")
    found = []
    for i in range(o, n, 4):
        direction = _read_direction(data, i + 1)
        attr_id = data[i + 2] | data[i + 3] << 8
        record = {"status": data[i], "direction": direction, "attribute_id": attr_id}
        found.append(named(cluster, _whose(server, direction), attr_id, record))
    return {"records": found}, n


def encode_read_configuration(cluster: int, server: bool, fields: Mapping[str, Any]) -> bytes:
    check_keys(fields, ("records",), "read_reporting_configuration")
    out = bytearray()
    for i, record in enumerate(records(fields)):
        where = f"records[{i}]"
        direction = _direction(record, where)
        attr_id = attribute_id(cluster, _whose(server, direction), record, where)
        out += bytes((direction,)) + attr_id.to_bytes(2, "little")
    return bytes(out)


def decode_read_configuration(cluster: int, server: bool, data: bytes, o: int) -> tuple[dict[str, Any], int]:
    n = len(data)
    if (n - o) % 3:
        raise DecodeError(o, f"attribute records are 3 bytes (direction, attribute id); {n - o} remain")
    found = []
    for i in range(o, n, 3):
        direction = _read_direction(data, i)
        attr_id = data[i + 1] | data[i + 2] << 8
        found.append(named(cluster, _whose(server, direction), attr_id,
                           {"direction": direction, "attribute_id": attr_id}))
    return {"records": found}, n


def encode_read_configuration_response(cluster: int, server: bool, fields: Mapping[str, Any]) -> bytes:
    """ZCL 07-5123 §2.5.10: status, direction, attribute id, and the configuration only when the
    status is SUCCESS."""
    check_keys(fields, ("records",), "read_reporting_configuration_response")
    out = bytearray()
    for i, record in enumerate(records(fields)):
        where = f"records[{i}]"
        code = status(record, where)
        direction = _direction(record, where)
        side = _whose(server, direction)
        attr_id = attribute_id(cluster, side, record, where)
        out += bytes((code, direction)) + attr_id.to_bytes(2, "little")
        if code == STATUS_SUCCESS:
            config = {k: v for k, v in record.items() if k != "status"}
            out += _encode_configuration(cluster, side, config, where, direction=direction, attr_id=attr_id)
    return bytes(out)


def decode_read_configuration_response(
    cluster: int, server: bool, data: bytes, o: int
) -> tuple[dict[str, Any], int]:
    found = []
    while o < len(data):
        need(data, o, 4, "attribute reporting configuration record")
        code, direction = data[o], _read_direction(data, o + 1)
        attr_id = data[o + 2] | data[o + 3] << 8
        record: dict[str, Any] = {"status": code, "direction": direction, "attribute_id": attr_id}
        o += 4
        if code == STATUS_SUCCESS:
            o = _decode_configuration(data, o, record, direction)
        found.append(named(cluster, _whose(server, direction), attr_id, record))
    return {"records": found}, o
