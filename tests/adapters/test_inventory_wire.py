"""The HAN inventory's messages in each protocol (issue 13), unit by unit: round trips, refusals, and
the element names written out literally — the adapter and the emulators share the wire layer, so
only this file would notice both ends drifting away from what HEADENDS.md documents (MultiSpeak
4.1.6 InitiateHANRegistrationStatusRequest and NOT_Server's HANRegistrationNotification with
HANRegistration[]; 61968-9 GetEndDevices and EndDevice with a status)."""

from __future__ import annotations

import pytest
from lxml import etree

from ams_adapters.inventory import InventoryUnavailable, JoinState, from_registrations
from ams_adapters.profiles import HeadEndProfileError, load_profile
from ams_adapters.wire import binary as bw
from ams_adapters.wire import cim
from ams_adapters.wire import multispeak as ms
from ams_adapters.wire.common import (
    Ack,
    AckStatus,
    HanRegistration,
    HeadEndRequest,
    HeadEndRequestKind,
    NoteKind,
    Notification,
    WireError,
)

ESI = "10443720000000001"
QUERY = HeadEndRequest("oncor:inv:abc-1", ESI, HeadEndRequestKind.HAN_INVENTORY, 1_800_000_060.0)
REGS = (HanRegistration("00:1b:c5:00:00:00:00:01", "joined", "pct", "1.1", 1_800_000_000.5, 201, -47),
        HanRegistration("00:1b:c5:00:00:00:00:02", "failed", reason="link_key_mismatch"),
        HanRegistration("00:1b:c5:00:00:00:00:03", "provision_requested"))
ANSWER = Notification(NoteKind.INVENTORY, QUERY.transaction_id, ESI, 1_800_000_001.25,
                      meter_id="00:07:81:00:00:00:00:01", registrations=REGS)


def _names(xml: bytes) -> list[str]:
    return [etree.QName(el).localname for el in etree.fromstring(xml).iter()]


def test_multispeak_registration_status_request_and_notification() -> None:
    xml = ms.encode_request(QUERY, "http://gw/NOT_Server")
    names = _names(xml)
    assert "InitiateHANRegistrationStatusRequest" in names and ms.ENDPOINT_OF_KIND[QUERY.kind] == "HAN_Server"
    assert {"hanInterfaceID", "transactionID", "responseURL", "expirationTime"} <= set(names)
    assert "seCommand" not in names  # a status query carries no SE command
    req, url = ms.decode_request(xml)
    assert (req, url) == (QUERY, "http://gw/NOT_Server")

    note_xml = ms.encode_notification(ANSWER, HeadEndRequestKind.HAN_INVENTORY)
    names = _names(note_xml)
    assert names[names.index("Body") + 1] == "HANRegistrationNotification"
    assert {"meterID", "HANRegistrations", "HANRegistration", "hanDeviceID", "registrationStatus", "deviceType",
            "seVersion", "lastCommunication", "lqi", "rssi", "errorString"} <= set(names)
    assert names.count("HANRegistration") == 3
    assert ms.decode_notification(note_xml) == ANSWER
    with pytest.raises(WireError) as info:
        ms.decode_notification(note_xml.replace(b"<lqi>201</lqi>", b"<lqi>strong</lqi>"))
    assert (info.value.field, info.value.value) == ("lqi", "strong")
    with pytest.raises(WireError) as info:
        ms.decode_notification(note_xml.replace(b"HANRegistrations>", b"Registrations>"))
    assert info.value.field == "HANRegistrations"


def test_cim_get_end_devices_acknowledgement_and_data_reply() -> None:
    xml = cim.encode_get_end_devices("m1", "p/reply/gw", QUERY)
    names = _names(xml)
    assert names[:1] == ["RequestMessage"] and {"GetEndDevices", "EndDevice", "mRID", "ID", "Option"} <= set(names)
    for pinned in (b"<Verb>get</Verb>", b"<Noun>EndDevices</Noun>", b"<AckRequired>true</AckRequired>"):
        assert pinned in xml
    h, root = cim.parse(xml)
    assert (h.verb, h.reply_address) == ("get", "p/reply/gw")
    assert cim.get_end_devices_from(h, root) == QUERY
    with pytest.raises(WireError) as info:  # the inventory is never an EndDeviceControl
        cim.encode_get_end_devices("m1", "p", HeadEndRequest("t", ESI, HeadEndRequestKind.TEXT, 1.0))
    assert info.value.field == "kind"

    # The acknowledgement (no Reply/ID): not an inventory; the data reply: the inventory.
    ack = cim.encode_reply("m1", "m2", [Ack(QUERY.transaction_id, AckStatus.OK)], noun="EndDevices")
    h, root = cim.parse(ack)
    assert cim.end_devices_note(h, root) is None
    assert cim.decode_reply(ack, [QUERY.transaction_id])[1] == [Ack(QUERY.transaction_id, AckStatus.OK)]
    data = cim.encode_end_devices("m1", "m3", ANSWER)
    names = _names(data)
    assert {"EndDevices", "EndDevice", "isPan", "serialNumber", "status", "value", "dateTime", "type", "reason",
            "seVersion", "lastCommunication", "lqi", "rssi"} <= set(names)
    assert names.count("EndDevice") == 4  # the meter, then one per HAN device
    h, root = cim.parse(data)
    assert h.correlation_id == "m1" and cim.end_devices_note(h, root) == ANSWER
    failed = Notification(NoteKind.FAILED, QUERY.transaction_id, ESI, 1.0, reason="meter dark")
    h, root = cim.parse(cim.encode_end_devices("m1", "m4", failed))
    note = cim.end_devices_note(h, root)
    assert note is not None and (note.kind, note.reason) == (NoteKind.FAILED, "meter dark")


def test_binary_inventory_result_in_the_frame_blob() -> None:
    kind, seq, body = bw.unpack(bw.pack("SUBMIT", 3, bw.request_body(QUERY))[4:])
    assert (kind, seq, bw.request_from(body)) == ("SUBMIT", 3, QUERY)
    data = bw.pack("RESULTS", 4, {"results": [bw.result_body(9, ANSWER)]})
    _kind, _seq, results = bw.unpack(data[4:])
    result_id, note = bw.result_from(results.results[0])
    assert (result_id, note) == (9, ANSWER)
    garbled = results.results[0]
    garbled.frame = b"\x00\x05ab"
    with pytest.raises(WireError) as info:
        bw.result_from(garbled)
    assert info.value.field == "frame"


def test_registrations_to_the_contract_and_the_profile_timeout() -> None:
    inventory = from_registrations(ESI, ANSWER.meter_id, ANSWER.at, reversed(REGS))
    assert [d.eui64 for d in inventory.devices] == sorted(r.eui64 for r in REGS)  # sorted, whatever the order
    assert inventory.devices[0].join_state is JoinState.JOINED and inventory.devices[0].lqi == 201
    with pytest.raises(InventoryUnavailable, match="registrationStatus: 'dancing'") as info:
        from_registrations(ESI, None, 0.0, [HanRegistration("00:11", "dancing")])
    assert info.value.refused
    assert load_profile("oncor").inventory_timeout_s == 60.0
    assert load_profile("oncor", inventory_timeout_s=2.5).inventory_timeout_s == 2.5
    with pytest.raises(HeadEndProfileError) as bad:
        load_profile("oncor", inventory_timeout_s=0)
    assert bad.value.field == "inventory_timeout_s"
