"""Our named Metering and Time attributes agree with zigpy's own definitions (ids and ZCL types)."""

from __future__ import annotations

from zigpy.zcl import foundation
from zigpy.zcl.clusters.general import Time
from zigpy.zcl.clusters.smartenergy import Metering

from zigbee_se import ATTRIBUTES, ClusterId, find_attribute

# Where zigpy's Python typing gives another ZCL type id than the SE spec (SE_FRAMES.md §5, Wireshark):
# zigpy models the formatting bytes as an IntStruct over uint8 and the device type as an enum8; on
# the wire all of them are one byte, and SE 1.x declares them map8. The codec decodes whatever type
# id a device sends; it encodes the spec's.
KNOWN_ZIGPY_DIFFERENCES = {
    "summation_formatting": (0x20, 0x18),
    "demand_formatting": (0x20, 0x18),
    "historical_consumption_formatting": (0x20, 0x18),
    "metering_device_type": (0x30, 0x18),
}


def test_named_attributes_match_zigpy() -> None:
    zigpy_classes = {ClusterId.METERING: Metering, ClusterId.TIME: Time}
    checked = 0
    for attr in ATTRIBUTES:
        cls = zigpy_classes.get(ClusterId(attr.cluster))
        if cls is None or not attr.server:
            continue
        theirs = next(a for a in cls.AttributeDefs if a.id == attr.attribute_id)
        type_id = foundation.DataType.from_python_type(theirs.type).type_id
        if attr.name in KNOWN_ZIGPY_DIFFERENCES:
            assert (type_id, attr.data_type) == KNOWN_ZIGPY_DIFFERENCES[attr.name]
        else:
            assert type_id == attr.data_type, (attr.name, hex(type_id), hex(attr.data_type))
        checked += 1
    assert checked == 21


def test_other_metering_attributes_come_from_zigpy() -> None:
    found = find_attribute(ClusterId.METERING, 0x0A00)
    assert found is not None and found.name == "bill_to_date" and found.data_type == 0x23
    assert find_attribute(ClusterId.METERING, 0xABCD) is None
