"""Our named Metering and Time attributes agree with zigpy's own definitions on the wire (ids and the
ZCL type id zigpy sends, its `zcl_type`)."""

from __future__ import annotations

from zigpy.zcl import foundation
from zigpy.zcl.clusters.general import Time
from zigpy.zcl.clusters.smartenergy import Metering

from zigbee_se import ATTRIBUTES, ClusterId, find_attribute

MAP8 = 0x18

# zigpy's Python value classes for these four are not bitmaps: the three Formatting attributes are
# `NumberFormatting` (an IntStruct over uint8) and MeteringDeviceType an enum8. On the wire zigpy
# 2.4 types all four map8 (`zcl_type`), as SE 1.x does (SE_FRAMES.md §5), so nothing differs in a
# frame; only `DataType.from_python_type` (what this codec once read) gives uint8/enum8.
PYTHON_CLASS_IS_NOT_THE_WIRE_TYPE = {
    "summation_formatting": 0x20,
    "demand_formatting": 0x20,
    "historical_consumption_formatting": 0x20,
    "metering_device_type": 0x30,
}


def test_named_attributes_match_zigpy_on_the_wire() -> None:
    zigpy_classes = {ClusterId.METERING: Metering, ClusterId.TIME: Time}
    checked = 0
    for attr in ATTRIBUTES:
        cls = zigpy_classes.get(ClusterId(attr.cluster))
        if cls is None or not attr.server:
            continue
        theirs = next(a for a in cls.AttributeDefs if a.id == attr.attribute_id)
        assert theirs.zcl_type == attr.data_type, (attr.name, hex(theirs.zcl_type), hex(attr.data_type))
        python_class_type = foundation.DataType.from_python_type(theirs.type).type_id
        assert python_class_type == PYTHON_CLASS_IS_NOT_THE_WIRE_TYPE.get(attr.name, attr.data_type), attr.name
        checked += 1
    assert checked == 21


def test_other_metering_attributes_come_from_zigpy() -> None:
    found = find_attribute(ClusterId.METERING, 0x0A00)
    assert found is not None and found.name == "bill_to_date" and found.data_type == 0x23
    assert find_attribute(ClusterId.METERING, 0xABCD) is None


def test_zigpy_typed_formatting_attributes_are_bitmaps_as_zigpy_sends_them() -> None:
    # Typed from zigpy's Python class they came out uint8, so the codec wrote 0x20 where zigpy
    # itself (and SE) sends 0x18.
    for attribute_id in (0x030A, 0x030B, 0x030D, 0x0313, 0x0314):
        found = find_attribute(ClusterId.METERING, attribute_id)
        assert found is not None and found.data_type == MAP8, hex(attribute_id)
