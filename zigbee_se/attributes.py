"""Attributes the gateway reads and reports around the SE commands, typed, and the ZCL data types
their values travel as (SE_FRAMES.md §5-6, §3.7, §2.5).

The named attributes are declared here because the gateway and the simulators use them by name;
for any other Metering or Time attribute id the name and the wire type (zigpy's `zcl_type`) come
from zigpy's own cluster definitions (reuse, not a second copy). tests/zigbee_se/test_attributes.py
checks that both agree on the wire type; zigpy's Python value classes may differ (see there).
"""

from __future__ import annotations

import enum
import functools
import struct
from dataclasses import dataclass
from typing import Any

from zigbee_se.clusters import ClusterId

# ZCL data type ids -> (name, fixed size or -1/-2 for 1-/2-byte length prefixed, kind)
# kinds: "uint", "int", "bool", "float", "octets" (bytes), "string" (text), "none"
DATA_TYPES: dict[int, tuple[str, int, str]] = {
    0x00: ("nodata", 0, "none"),
    **{0x08 + i: (f"data{8 * (i + 1)}", i + 1, "uint") for i in range(8)},
    0x10: ("bool", 1, "bool"),
    **{0x18 + i: (f"map{8 * (i + 1)}", i + 1, "uint") for i in range(8)},
    **{0x20 + i: (f"uint{8 * (i + 1)}", i + 1, "uint") for i in range(8)},
    **{0x28 + i: (f"int{8 * (i + 1)}", i + 1, "int") for i in range(8)},
    0x30: ("enum8", 1, "uint"),
    0x31: ("enum16", 2, "uint"),
    0x38: ("semi", 2, "float"),
    0x39: ("single", 4, "float"),
    0x3A: ("double", 8, "float"),
    0x41: ("octstr", -1, "octets"),
    0x42: ("string", -1, "string"),
    0x43: ("octstr16", -2, "octets"),
    0x44: ("string16", -2, "string"),
    0xE0: ("ToD", 4, "uint"),
    0xE1: ("date", 4, "uint"),
    0xE2: ("UTC", 4, "uint"),
    0xE8: ("clusterId", 2, "uint"),
    0xE9: ("attribId", 2, "uint"),
    0xEA: ("bacOID", 4, "uint"),
    0xF0: ("EUI64", 8, "octets"),
    0xF1: ("key128", 16, "octets"),
    0xFF: ("unk", 0, "none"),
}
FLOAT_CODES = {2: "<e", 4: "<f", 8: "<d"}
ANALOG_TYPES = frozenset([*range(0x20, 0x30), 0x38, 0x39, 0x3A, 0xE0, 0xE1, 0xE2])
"""Analog data types (ZCL 07-5123 Table 2-10): a reporting configuration has a reportable change
only for these (uint, int, floats, time of day, date, UTCTime)."""
COLLECTION_TYPES = {0x48: "array", 0x4C: "struct", 0x50: "set", 0x51: "bag"}
"""ZCL types discovery and reporting configuration may name by id; their values are not something
SE devices send us, so the codec does not (de)serialize them (no DATA_TYPES entry)."""

UTC = 0xE2
MAP8, MAP16 = 0x18, 0x19
UINT8, UINT16, UINT24, UINT32, UINT48 = 0x20, 0x21, 0x22, 0x23, 0x25
INT24, INT32 = 0x2A, 0x2B
ENUM8 = 0x30


@dataclass(frozen=True, slots=True)
class AttributeDef:
    cluster: int
    server: bool
    """True for a server-side attribute (read with a client->server Read Attributes)."""
    attribute_id: int
    name: str
    data_type: int


def _defs(cluster: int, server: bool, rows: list[tuple[int, str, int]]) -> list[AttributeDef]:
    return [AttributeDef(cluster, server, a, n, t) for a, n, t in rows]


ATTRIBUTES: tuple[AttributeDef, ...] = tuple(
    _defs(ClusterId.METERING, True, [
        (0x0000, "current_summation_delivered", UINT48),
        (0x0001, "current_summation_received", UINT48),
        (0x0200, "status", MAP8),
        (0x0300, "unit_of_measure", ENUM8),
        (0x0301, "multiplier", UINT24),
        (0x0302, "divisor", UINT24),
        (0x0303, "summation_formatting", MAP8),
        (0x0304, "demand_formatting", MAP8),
        (0x0305, "historical_consumption_formatting", MAP8),
        (0x0306, "metering_device_type", MAP8),
        (0x0400, "instantaneous_demand", INT24),
    ])
    + _defs(ClusterId.TIME, True, [
        (0x0000, "time", UTC),
        (0x0001, "time_status", MAP8),
        (0x0002, "time_zone", INT32),
        (0x0003, "dst_start", UINT32),
        (0x0004, "dst_end", UINT32),
        (0x0005, "dst_shift", INT32),
        (0x0006, "standard_time", UINT32),
        (0x0007, "local_time", UINT32),
        (0x0008, "last_set_time", UTC),
        (0x0009, "valid_until_time", UTC),
    ])
    + _defs(ClusterId.DRLC, False, [
        (0x0000, "utility_enrollment_group", UINT8),
        (0x0001, "start_randomization_minutes", UINT8),
        (0x0002, "duration_randomization_minutes", UINT8),
        (0x0003, "device_class_value", MAP16),
    ])
    + _defs(ClusterId.PRICE, False, [
        (0x0000, "price_increase_randomize_minutes", UINT8),
        (0x0001, "price_decrease_randomize_minutes", UINT8),
        (0x0002, "commodity_type", ENUM8),
    ])
)

_BY_ID = {(a.cluster, a.server, a.attribute_id): a for a in ATTRIBUTES}
_BY_NAME = {(a.cluster, a.server, a.name): a for a in ATTRIBUTES}

class TimeStatus(enum.IntFlag):
    """The Time cluster's TimeStatus bitmap (attribute 0x0001; SE_FRAMES.md §6, ZCL 07-5123 §3.12.2.2.2)."""

    MASTER = 0x01  # this server is a master clock for the network
    SYNCHRONIZED = 0x02  # its Time was set to a time standard
    MASTER_ZONE_DST = 0x04  # TimeZone, DstStart, DstEnd and DstShift are set internally for the clock's location
    SUPERSEDING = 0x08  # clients prefer this server's time over other masters' (SE: the ESI)


@functools.cache
def _zigpy_defs(cluster: int) -> dict[int, AttributeDef]:
    """Server attributes of zigpy's definition of `cluster`, typed by ZCL data type id."""
    from zigpy.zcl import foundation
    from zigpy.zcl.clusters.general import Time
    from zigpy.zcl.clusters.smartenergy import Metering

    classes: dict[int, Any] = {ClusterId.METERING: Metering, ClusterId.TIME: Time}
    cls = classes.get(cluster)
    if cls is None:
        return {}
    out: dict[int, AttributeDef] = {}
    for attr in cls.AttributeDefs:
        # zcl_type is the type zigpy puts on the wire; the Python value class can say otherwise
        # (the Metering formatting attributes are NumberFormatting over uint8, typed map8 on the wire).
        type_id = attr.zcl_type
        if type_id is None or type_id == foundation.DataTypeId.unk:  # no ZCL type id
            continue
        out[attr.id] = AttributeDef(cluster, True, attr.id, attr.name, int(type_id))
    return out


def find_attribute(cluster: int, attribute_id: int, *, server: bool = True) -> AttributeDef | None:
    found = _BY_ID.get((cluster, server, attribute_id))
    if found is None and server:
        found = _zigpy_defs(cluster).get(attribute_id)
    return found


def attribute_by_name(cluster: int, name: str, *, server: bool = True) -> AttributeDef | None:
    found = _BY_NAME.get((cluster, server, name))
    if found is None and server:
        for attr in _zigpy_defs(cluster).values():
            if attr.name == name:
                return attr
    return found


def pack_float(size: int, value: float) -> bytes:
    return struct.pack(FLOAT_CODES[size], value)
