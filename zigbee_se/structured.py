"""Structured attribute access (ZCL 07-5123 rev 6 §2.5.15-2.5.17): Read Attributes Structured (0x0e),
Write Attributes Structured (0x0f) and its response (0x10) reach into an array, structure, set or
bag attribute through a selector.

The selector is an indicator byte — the number of indexes (0-15) in its low nibble and, in writes,
the operation in its high nibble (0 write, 1 add to a set or bag, 2 remove from one) — followed by
that many uint16 indexes. With no index and operation 0 the whole attribute is meant, typed as the
attribute is; an element's type is the element's, so the caller names it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zigbee_se.attributes import DATA_TYPES
from zigbee_se.errors import DecodeError, EncodeError
from zigbee_se.records import (
    STATUS_SUCCESS,
    attribute_id,
    check_keys,
    named,
    need,
    records,
    status,
    typed_value,
)
from zigbee_se.values import decode_value, encode_value

OPERATIONS = {0: "write", 1: "add", 2: "remove"}
_MAX_INDEXES = 15


def _selector(record: Mapping[str, Any], where: str, *, write: bool) -> bytes:
    indexes = record.get("indexes", [])
    if not isinstance(indexes, list | tuple) or len(indexes) > _MAX_INDEXES:
        raise EncodeError(f"{where}.indexes", indexes, f"a list of at most {_MAX_INDEXES} uint16 indexes")
    operation = record.get("operation", 0) if write else 0
    if isinstance(operation, bool) or operation not in OPERATIONS or not isinstance(operation, int):
        raise EncodeError(f"{where}.operation", operation, "0 (write), 1 (add) or 2 (remove)")
    out = bytearray((operation << 4 | len(indexes),))
    for i, index in enumerate(indexes):
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= 0xFFFF:
            raise EncodeError(f"{where}.indexes[{i}]", index, "uint16 in 0..0xffff")
        out += index.to_bytes(2, "little")
    return bytes(out)


def _read_selector(data: bytes, o: int, record: dict[str, Any], *, write: bool) -> int:
    need(data, o, 1, "selector")
    count, operation = data[o] & 0x0F, data[o] >> 4
    need(data, o + 1, 2 * count, f"selector with {count} indexes")
    if write:
        if operation not in OPERATIONS:
            raise DecodeError(o, f"selector operation {operation} is reserved (0 write, 1 add, 2 remove)")
        record["operation"] = operation
    # In a read the high nibble is reserved: ignored on receipt, as ZCL asks of reserved bits.
    record["indexes"] = [data[i] | data[i + 1] << 8 for i in range(o + 1, o + 1 + 2 * count, 2)]
    return o + 1 + 2 * count


def encode_read(cluster: int, server: bool, fields: Mapping[str, Any]) -> bytes:
    check_keys(fields, ("records",), "read_attributes_structured")
    out = bytearray()
    for i, record in enumerate(records(fields)):
        where = f"records[{i}]"
        out += attribute_id(cluster, server, record, where).to_bytes(2, "little")
        out += _selector(record, where, write=False)
    return bytes(out)


def decode_read(cluster: int, server: bool, data: bytes, o: int) -> tuple[dict[str, Any], int]:
    found = []
    while o < len(data):
        need(data, o, 3, "structured read record")
        attr_id = data[o] | data[o + 1] << 8
        record: dict[str, Any] = {"attribute_id": attr_id}
        o = _read_selector(data, o + 2, record, write=False)
        found.append(named(cluster, server, attr_id, record))
    return {"records": found}, o


def encode_write(cluster: int, server: bool, fields: Mapping[str, Any]) -> bytes:
    check_keys(fields, ("records",), "write_attributes_structured")
    out = bytearray()
    for i, record in enumerate(records(fields)):
        where = f"records[{i}]"
        attr_id = attribute_id(cluster, server, record, where)
        selector = _selector(record, where, write=True)
        out += attr_id.to_bytes(2, "little") + selector
        if selector == b"\x00":  # the whole attribute, typed as the attribute is
            out += typed_value(cluster, server, attr_id, record, where)
            continue
        type_id = record.get("data_type")
        if isinstance(type_id, bool) or not isinstance(type_id, int) or type_id not in DATA_TYPES:
            raise EncodeError(f"{where}.data_type", type_id, "the element's supported ZCL data type id")
        out += bytes((type_id,)) + encode_value(type_id, record.get("value"), f"{where}.value")
    return bytes(out)


def decode_write(cluster: int, server: bool, data: bytes, o: int) -> tuple[dict[str, Any], int]:
    found = []
    while o < len(data):
        need(data, o, 3, "structured write record")
        attr_id = data[o] | data[o + 1] << 8
        record: dict[str, Any] = {"attribute_id": attr_id}
        o = _read_selector(data, o + 2, record, write=True)
        need(data, o, 1, "data type")
        record["data_type"] = data[o]
        record["value"], o = decode_value(data[o], data, o + 1)
        found.append(named(cluster, server, attr_id, record))
    return {"records": found}, o


def encode_write_response(cluster: int, server: bool, fields: Mapping[str, Any]) -> bytes:
    """ZCL 07-5123 §2.5.17: a record (status, attribute id, selector) per element NOT written;
    when all were, one SUCCESS status byte and nothing else."""
    check_keys(fields, ("records",), "write_attributes_structured_response")
    out = bytearray()
    for i, record in enumerate(records(fields)):
        where = f"records[{i}]"
        code = status(record, where)
        if code != STATUS_SUCCESS:
            out.append(code)
            out += attribute_id(cluster, server, record, where).to_bytes(2, "little")
            out += _selector(record, where, write=True)
    return bytes(out) if out else bytes((STATUS_SUCCESS,))


def decode_write_response(cluster: int, server: bool, data: bytes, o: int) -> tuple[dict[str, Any], int]:
    n = len(data)
    if n - o == 1 and data[o] == STATUS_SUCCESS:
        return {"records": [{"status": STATUS_SUCCESS}]}, n
    if n == o:
        raise DecodeError(o, "write attributes structured response needs at least one status record")
    found = []
    while o < n:
        need(data, o, 4, "structured write status record")
        attr_id = data[o + 1] | data[o + 2] << 8
        record: dict[str, Any] = {"status": data[o], "attribute_id": attr_id}
        o = _read_selector(data, o + 3, record, write=True)
        found.append(named(cluster, server, attr_id, record))
    return {"records": found}, o
