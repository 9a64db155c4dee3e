"""The ZCL status table against zigpy's: same codes, same names, none missing on either side."""

from __future__ import annotations

from zigpy.zcl import foundation

from zigbee_se import ZclStatus, status_text


def test_status_table_equals_zigpys() -> None:
    ours = {int(s): s.name for s in ZclStatus}
    theirs = {int(s): s.name for s in foundation.Status}
    assert ours == theirs


def test_status_text_names_known_and_unknown_codes() -> None:
    assert status_text(0x87) == "0x87 INVALID_VALUE"
    assert status_text(0xC3) == "0xc3 UNSUPPORTED_CLUSTER"
    assert status_text(0x5A) == "0x5a (not a ZCL status)"
