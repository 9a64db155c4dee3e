"""Write Attributes to a DRLC client's attributes, and unsupported global commands (issue 13,
"Devices"), through real bytes: each frame is encoded with zigbee_se (or written out by hand where
the codec cannot say it), handed to the meter as a head-end would, and the device's answer is
decoded from what the meter relayed upstream; on the virtual clock.
"""

from __future__ import annotations

from typing import Any

from zigpy.zcl import foundation

from simulators.meter import ALL_DEVICES
from simulators.scenario import ScenarioPremise
from simulators.se_time import to_utc
from zigbee_se import DecodedFrame, Direction, FrameType, encode_frame

DRLC = 0x0701
UEG, START_RAND, DURATION_RAND, DEVICE_CLASS = 0x0000, 0x0001, 0x0002, 0x0003


def write(p: ScenarioPremise, eui: bytes, records: list[dict[str, Any]], *,
          command: str = "write_attributes", tsn: int = 50) -> int:
    frame = encode_frame("drlc", command, {"records": records}, tsn=tsn,
                         direction=Direction.SERVER_TO_CLIENT)
    return p.meter.send(eui, DRLC, frame)


def answers(p: ScenarioPremise, command: str) -> list[DecodedFrame]:
    return [f for _, _, f in p.frames() if f.command == command]


def raw_answers(p: ScenarioPremise) -> list[bytes]:
    return [e.frame for e in p.events if hasattr(e, "frame")]


def lce(iid: int, *, dc: int = 0x0001, ueg: int = 0, start: int = 0, ctl: int = 0) -> dict[str, Any]:
    return {"issuer_event_id": iid, "device_class": dc, "utility_enrollment_group": ueg,
            "start_time": start, "duration_in_minutes": 30, "criticality_level": 3,
            "event_control": ctl}


def test_written_enrollment_group_changes_which_events_the_device_takes() -> None:
    p = ScenarioPremise.build(["spec-pct"])
    pct = p.devices[0]
    assert write(p, pct.eui64, [{"attribute_id": UEG, "value": 5}], tsn=61) == 1
    p.clock.advance(2)
    (response,) = answers(p, "write_attributes_response")
    assert response.tsn == 61 and response.direction == Direction.CLIENT_TO_SERVER
    assert raw_answers(p)[0][3:] == b"\x00"  # all written: one SUCCESS status, no records
    assert response.fields == {"records": [{"status": 0}]}
    # Group 7 is no longer this device's: the meter's broadcast filter follows the written group.
    assert p.send(ALL_DEVICES, "drlc", "load_control_event", lce(1, ueg=7)) == 0
    assert p.send(pct.eui64, "drlc", "load_control_event", lce(2, ueg=7)) == 1  # unicast: silent
    assert p.send(ALL_DEVICES, "drlc", "load_control_event", lce(3, ueg=5)) == 1
    p.clock.advance(5)
    assert p.statuses() == [(3, 0x01), (3, 0x02)]


def test_mixed_write_reports_only_the_failures_and_writes_the_rest() -> None:
    p = ScenarioPremise.build(["spec-pct"])
    pct = p.devices[0]
    write(p, pct.eui64, [
        {"attribute_id": UEG, "value": 3},
        {"attribute_id": START_RAND, "value": 61},  # over 0x3C
        {"attribute_id": DURATION_RAND, "value": 2},
        {"attribute_id": 0x0009, "data_type": 0x20, "value": 1},  # no such attribute
        {"attribute_id": DEVICE_CLASS, "value": 0x1001},  # reserved class bit 12
    ])
    p.clock.advance(2)
    payload = raw_answers(p)[0][3:]
    assert payload == bytes.fromhex("870100" "860900" "870300")
    schema = foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Write_Attributes_rsp].schema
    theirs, rest = schema.deserialize(payload)
    assert rest == b""
    assert [(r.status, r.attrid) for r in theirs.status_records] == [
        (foundation.Status.INVALID_VALUE, 1), (foundation.Status.UNSUPPORTED_ATTRIBUTE, 9),
        (foundation.Status.INVALID_VALUE, 3)]
    assert pct.drlc is not None
    assert pct.drlc.attribute_values() == {UEG: 3, START_RAND: 0, DURATION_RAND: 2, DEVICE_CLASS: 1}


def test_wrong_data_type_is_refused_and_device_class_takes_either_16_bit_type() -> None:
    p = ScenarioPremise.build(["spec-pct"])
    pct = p.devices[0]
    # Written out by hand: the codec types every known attribute itself. UEG as uint16 (wrong),
    # DeviceClassValue as uint16 (0x21, SE's declared type; the codec writes map16 0x19).
    frame = bytes.fromhex("08" "2a" "02" "0000" "21" "0500" "0300" "21" "0400")
    assert p.meter.send(pct.eui64, DRLC, frame) == 1
    p.clock.advance(2)
    (response,) = answers(p, "write_attributes_response")
    assert response.tsn == 0x2A
    assert response.fields["records"] == [
        {"status": 0x8D, "attribute_id": 0, "name": "utility_enrollment_group"}]
    assert pct.drlc is not None and pct.drlc.device_class == 0x0004
    # Now a water-heater-class event reaches it and an HVAC one does not.
    assert p.send(ALL_DEVICES, "drlc", "load_control_event", lce(4, dc=0x0001)) == 0
    assert p.send(ALL_DEVICES, "drlc", "load_control_event", lce(5, dc=0x0004)) == 1
    p.clock.advance(5)
    assert p.statuses() == [(5, 0x01), (5, 0x02)]


def test_undivided_write_is_all_or_nothing() -> None:
    p = ScenarioPremise.build(["spec-pct"])
    pct = p.devices[0]
    assert pct.drlc is not None
    write(p, pct.eui64, [{"attribute_id": UEG, "value": 9},
                         {"attribute_id": DURATION_RAND, "value": 0x3D}],
          command="write_attributes_undivided", tsn=70)
    p.clock.advance(2)
    write(p, pct.eui64, [{"attribute_id": UEG, "value": 9},
                         {"attribute_id": DURATION_RAND, "value": 0x3C}],
          command="write_attributes_undivided", tsn=71)
    p.clock.advance(2)
    first, second = answers(p, "write_attributes_response")
    assert (first.tsn, [(r["status"], r["attribute_id"]) for r in first.fields["records"]]) == (
        70, [(0x87, DURATION_RAND)])
    assert (second.tsn, second.fields["records"]) == (71, [{"status": 0}])
    assert pct.drlc.ueg == 9 and pct.drlc.duration_randomization_minutes == 0x3C


def test_no_response_write_writes_what_it_can_and_answers_nothing() -> None:
    p = ScenarioPremise.build(["spec-pct"])
    pct = p.devices[0]
    assert pct.drlc is not None
    write(p, pct.eui64, [{"attribute_id": START_RAND, "value": 10},
                         {"attribute_id": DURATION_RAND, "value": 99}],
          command="write_attributes_no_response")
    p.clock.advance(5)
    assert p.frames() == []  # not even a Default Response
    assert (pct.drlc.start_randomization_minutes, pct.drlc.duration_randomization_minutes) == (10, 0)


def test_written_randomization_is_what_the_next_event_draws() -> None:
    delays = set()
    for seed in range(6):
        p = ScenarioPremise.build(["spec-pct"], seed=seed)
        pct = p.devices[0]
        write(p, pct.eui64, [{"attribute_id": START_RAND, "value": 10}])
        p.clock.advance(2)
        start = p.clock.now() + 60
        p.send(ALL_DEVICES, "drlc", "load_control_event", lce(6, start=to_utc(start), ctl=0x01))
        p.clock.advance(3600)
        started = [t for _, t, f in p.frames() if f.command == "report_event_status"
                   and f.fields["event_status"] == 0x02]
        delay = started[0] - start
        assert 0 <= delay < 600 + 1
        delays.add(round(delay))
    assert len(delays) > 3 and max(delays) > 60  # drawn within the written 10 minutes


def test_read_only_attribute_and_read_back_through_the_meter() -> None:
    p = ScenarioPremise.build(["silabs-pool-pump"])  # DeviceClassValue built read-only
    pump = p.devices[0]
    write(p, pump.eui64, [{"attribute_id": DEVICE_CLASS, "value": 0x0001},
                          {"attribute_id": UEG, "value": 6}])
    p.clock.advance(2)
    read = encode_frame("drlc", "read_attributes", {"attribute_ids": [0, 3]}, tsn=51,
                        direction=Direction.SERVER_TO_CLIENT)
    p.meter.send(pump.eui64, DRLC, read)
    p.clock.advance(2)
    (response,) = answers(p, "write_attributes_response")
    assert [(r["status"], r["attribute_id"]) for r in response.fields["records"]] == [(0x88, 3)]
    (values,) = answers(p, "read_attributes_response")
    assert [(r["attribute_id"], r["value"]) for r in values.fields["records"]] == [(0, 6), (3, 8)]


def test_unsupported_global_commands_get_unsup_general_command() -> None:
    p = ScenarioPremise.build(["spec-pct"])
    pct = p.devices[0]
    # A global command the codec knows but the device does not take (Report Attributes) ...
    report = encode_frame("drlc", "report_attributes",
                          {"records": [{"attribute_id": UEG, "data_type": 0x20, "value": 1}]},
                          tsn=80)
    # ... and one the codec does not know: Configure Reporting (0x06) for UEG, by hand.
    configure = bytes.fromhex("08" "51" "06" "00" "0000" "20" "0100" "1000" "01")
    # A cluster-specific command the device does not take stays UNSUP_CLUSTER_COMMAND (0x81),
    # a write to the DRLC *server* (client->server) is UNSUPPORTED_CLUSTER (0xC3).
    unknown_cluster_cmd = bytes.fromhex("09" "52" "07")
    server_write = encode_frame("drlc", "write_attributes",
                                {"records": [{"attribute_id": 0, "data_type": 0x20, "value": 1}]},
                                tsn=83)
    for frame in (report, configure, unknown_cluster_cmd, server_write):
        p.meter.send(pct.eui64, DRLC, frame)
    p.clock.advance(2)
    defaults = answers(p, "default_response")
    assert [(f.tsn, f.frame_type, f.fields["command_id"], f.fields["status"]) for f in defaults] == [
        (80, FrameType.GLOBAL, 0x0A, 0x82), (0x51, FrameType.GLOBAL, 0x06, 0x82),
        (0x52, FrameType.GLOBAL, 0x07, 0x81), (83, FrameType.GLOBAL, 0x02, 0xC3)]
    assert pct.drlc is not None and pct.drlc.ueg == 0
