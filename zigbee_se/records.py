"""What every global (profile-wide) ZCL command is made of: its entry in the table the codec
dispatches on, and the checked pieces of its payload — attribute ids and their data types, status
bytes, typed values, small integers (ZCL 07-5123 §2.5)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from zigbee_se.attributes import COLLECTION_TYPES, DATA_TYPES, attribute_by_name, find_attribute
from zigbee_se.errors import DecodeError, EncodeError
from zigbee_se.schema import Direction
from zigbee_se.values import encode_value

STATUS_SUCCESS = 0x00
STATUS_UNSUPPORTED_ATTRIBUTE = 0x86

Encode = Callable[[int, bool, Mapping[str, Any]], bytes]
"""(cluster, server-side attributes?, fields) -> payload"""
Decode = Callable[[int, bool, bytes, int], tuple[dict[str, Any], int]]
"""(cluster, server-side attributes?, frame, payload offset) -> (fields, end offset)"""


@dataclass(frozen=True, slots=True)
class GlobalCommand:
    command_id: int
    name: str
    default_direction: Direction
    encode: Encode
    decode: Decode
    field_names: tuple[str, ...]
    names_receiver_attributes: bool
    """True when the records name the receiver's attributes (Read, Write, Configure Reporting, ...
    sent to a server name server attributes); False when they name the sender's (responses,
    reports)."""

    def server_side(self, direction: Direction) -> bool:
        """Whether the attributes in a frame going `direction` are a server's (else a client's, e.g.
        an ESI writing the DRLC client's randomization minutes)."""
        to_server = direction == Direction.CLIENT_TO_SERVER
        return to_server if self.names_receiver_attributes else not to_server


def check_keys(fields: Mapping[str, Any], allowed: tuple[str, ...], command: str) -> None:
    for name in fields:
        if name not in allowed:
            raise EncodeError(name, fields[name], f"not a field of {command} (fields: {', '.join(allowed)})")


def records(fields: Mapping[str, Any], key: str = "records") -> Sequence[Mapping[str, Any]]:
    found = fields.get(key)
    if not isinstance(found, list | tuple) or not all(isinstance(r, Mapping) for r in found):
        raise EncodeError(key, found, "a list of objects")
    return found


def uint(value: Any, size: int, where: str) -> bytes:
    """A little-endian unsigned field of `size` bytes, checked."""
    top = (1 << (8 * size)) - 1
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise EncodeError(where, value, f"uint{8 * size} in 0..{top}")
    return value.to_bytes(size, "little")


def flag(value: Any, where: str) -> bytes:
    """A ZCL Boolean field (Discovery Complete): True/False or 1/0."""
    if value not in (0, 1) or not isinstance(value, int):
        raise EncodeError(where, value, "true or false (1 or 0)")
    return bytes((int(value),))


def read_flag(data: bytes, o: int, what: str) -> bool:
    need(data, o, 1, what)
    if data[o] > 1:
        raise DecodeError(o, f"{what}: 0x{data[o]:02x} is not a Boolean (0 or 1)")
    return data[o] == 1


def status(record: Mapping[str, Any], where: str) -> int:
    value = record.get("status", STATUS_SUCCESS)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFF:
        raise EncodeError(f"{where}.status", value, "a ZCL status uint8")
    return value


def need(data: bytes, o: int, count: int, what: str) -> None:
    if len(data) - o < count:
        raise DecodeError(o, f"{what} needs {count} bytes, {len(data) - o} remain")


def attribute_id(cluster: int, server: bool, record: Mapping[str, Any], where: str) -> int:
    ident = record.get("attribute_id", record.get("attribute"))
    if isinstance(ident, str):
        found = attribute_by_name(cluster, ident, server=server)
        if found is None:
            raise EncodeError(f"{where}.attribute_id", ident, "a known attribute name or a uint16 id")
        return found.attribute_id
    if isinstance(ident, bool) or not isinstance(ident, int) or not 0 <= ident <= 0xFFFF:
        raise EncodeError(f"{where}.attribute_id", ident, "uint16 in 0..0xffff or a known name")
    return ident


def data_type(
    cluster: int, server: bool, attr_id: int, record: Mapping[str, Any], where: str, *, collections: bool = False
) -> int:
    """The record's data type id, or the known attribute's when left out. With `collections` the
    array/struct/set/bag ids are accepted too (where only the id travels: discovery, reporting)."""
    known = find_attribute(cluster, attr_id, server=server)
    given = record.get("data_type")
    if given is None:
        if known is None:
            raise EncodeError(f"{where}.data_type", None, "required for an attribute this codec does not know")
        return known.data_type
    supported = given in DATA_TYPES or (collections and given in COLLECTION_TYPES)
    if isinstance(given, bool) or not isinstance(given, int) or not supported:
        raise EncodeError(f"{where}.data_type", given, "a supported ZCL data type id")
    if known is not None and known.data_type != given:
        raise EncodeError(
            f"{where}.data_type", given, f"0x{known.data_type:02x} for attribute {known.name}"
        )
    return given


def typed_value(cluster: int, server: bool, attr_id: int, record: Mapping[str, Any], where: str) -> bytes:
    """The data type byte and the value of one attribute record."""
    type_id = data_type(cluster, server, attr_id, record, where)
    return bytes((type_id,)) + encode_value(type_id, record.get("value"), f"{where}.value")


def named(cluster: int, server: bool, attr_id: int, record: dict[str, Any]) -> dict[str, Any]:
    """The decoded record with the attribute's name when the codec knows it."""
    known = find_attribute(cluster, attr_id, server=server)
    if known is not None:
        record["name"] = known.name
    return record
