"""What a simulated device does after joining, on the virtual clock (SE_BEHAVIOUR.md §6, §2.2):
ESI discovery and bindings over ZDO (the test plays the coordinator, answering in zigpy's ZDO
bytes), the time read and the requests for missed state, the periodic time read, the Basic
server a coordinator's interview reads, and a watched device's frames. The same device through
the EZSP emulator and bellows: tests/radio/test_binding.py."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
import zigpy.types as zt
import zigpy.zdo.types as zdo_t

from simulators.addressing import eui64_from_str
from simulators.client_device import ClientDevice
from simulators.clock import VirtualClock
from simulators.device import BASIC, DRLC, MESSAGING, PRICE, TIME
from simulators.errors import FirmwareProfileError
from simulators.factory import make_device
from simulators.profiles import load_profiles, profile_from_dict
from simulators.registration import ANSWER_TIMEOUT_S
from zigbee_se import Direction, decode_frame, encode_frame

DISPLAY = load_profiles()["silabs-ihd-drlc"]
EUI = "00:0d:6f:00:0a:90:69:e7"
COORDINATOR = "00:0d:6f:ff:fe:a1:b2:c3"
CODE = bytes.fromhex("83FED3407A939723A5C639B26916D505C3B5")
ESI_ENDPOINT = 10


class Coordinator:
    """The other end of the device's ZCL and ZDO uplinks: what it sent, decoded, with the time."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.zcl: list[tuple[float, int, Any]] = []
        self.zdo: list[tuple[float, zdo_t.ZDOCmd, int, list[Any]]] = []

    def uplink(self, cluster_id: int, frame: bytes) -> None:
        self.zcl.append((self.clock.now(), cluster_id, decode_frame(cluster_id, frame)))

    def zdo_uplink(self, cluster_id: int, payload: bytes) -> None:
        command = zdo_t.ZDOCmd(cluster_id)
        values, _ = zt.deserialize(payload[1:], zdo_t.CLUSTERS[command][1])
        self.zdo.append((self.clock.now(), command, payload[0], list(values)))

    def requests(self) -> list[tuple[int, str]]:
        return [(cluster, f.command) for _t, cluster, f in self.zcl]


def answer(device: ClientDevice, command: zdo_t.ZDOCmd, tsn: int, values: list[Any]) -> None:
    device.deliver_zdo(int(command), bytes([tsn]) + zt.serialize(values, zdo_t.CLUSTERS[command][1]))


def joined(clock: VirtualClock, **variant: Any) -> tuple[ClientDevice, Coordinator]:
    device = make_device(dataclasses.replace(DISPLAY, **variant), eui64_from_str(EUI), CODE, clock)
    coordinator = Coordinator(clock)
    device.attach(coordinator.uplink)
    device.attach_zdo(coordinator.zdo_uplink, zt.EUI64.convert(COORDINATOR))
    device.on_joined()
    return device, coordinator


AFTER_JOIN = [(TIME, "read_attributes"), (MESSAGING, "get_last_message"), (PRICE, "get_current_price"),
              (DRLC, "get_scheduled_events")]


def test_finds_the_esi_binds_each_client_cluster_then_asks_what_it_missed() -> None:
    clock = VirtualClock()
    device, coordinator = joined(clock)
    clock.advance(DISPLAY.join_delay_s)
    [(_t, command, tsn, values)] = coordinator.zdo
    # A broadcast to the rx-on-when-idle nodes for the DRLC *server* on the SE profile.
    assert (command, values) == (zdo_t.ZDOCmd.Match_Desc_req, [0xFFFD, 0x0109, [DRLC], []])
    assert coordinator.zcl == []  # nothing else before the ESI is known
    answer(device, zdo_t.ZDOCmd.Match_Desc_rsp, tsn, [zdo_t.Status.SUCCESS, 0x0000, [ESI_ENDPOINT]])
    bound = []
    for status in (zdo_t.Status.SUCCESS, zdo_t.Status.TABLE_FULL, zdo_t.Status.SUCCESS):
        _t, command, tsn, (src, src_ep, cluster, dst) = coordinator.zdo[-1]
        assert command == zdo_t.ZDOCmd.Bind_req
        assert (str(src), src_ep, str(dst.ieee), dst.endpoint) == (COORDINATOR, ESI_ENDPOINT, EUI, device.endpoint)
        bound.append(cluster)
        answer(device, zdo_t.ZDOCmd.Bind_rsp, tsn, [status])
    assert bound == [PRICE, DRLC, MESSAGING]  # Silicon Labs' order; the profile has no metering client
    registration = device.registration
    assert registration is not None and registration.registered
    assert (registration.esi_endpoints, registration.bind_results) == (
        [ESI_ENDPOINT], {PRICE: 0, DRLC: zdo_t.Status.TABLE_FULL, MESSAGING: 0})
    clock.advance(1)
    # A refused binding does not stop registration ("don't pay attention to whether it works").
    assert coordinator.requests() == AFTER_JOIN
    assert coordinator.zcl[0][2].fields["attribute_ids"] == [0, 1, 8, 9]


def test_an_esi_that_does_not_answer_costs_a_timeout_then_the_requests_go_out() -> None:
    clock = VirtualClock()
    device, coordinator = joined(clock)
    clock.advance(DISPLAY.join_delay_s)
    [(_t, _command, tsn, _values)] = coordinator.zdo
    answer(device, zdo_t.ZDOCmd.Match_Desc_rsp, tsn + 1, [0, 0x0000, [ESI_ENDPOINT]])  # not its answer
    clock.advance(ANSWER_TIMEOUT_S - 0.01)
    assert coordinator.zcl == [] and len(coordinator.zdo) == 1
    clock.advance(1)
    assert device.registration is not None and not device.registration.registered
    assert coordinator.requests() == AFTER_JOIN and len(coordinator.zdo) == 1  # no ESI: no Bind_req


def test_unanswered_bind_requests_time_out_one_by_one() -> None:
    clock = VirtualClock()
    device, coordinator = joined(clock)
    clock.advance(DISPLAY.join_delay_s)
    answer(device, zdo_t.ZDOCmd.Match_Desc_rsp, coordinator.zdo[0][2], [0, 0x0000, [ESI_ENDPOINT]])
    clock.advance(3 * ANSWER_TIMEOUT_S + 1)
    assert [when for when, command, *_ in coordinator.zdo if command == zdo_t.ZDOCmd.Bind_req] == [
        clock.now() - 3 * ANSWER_TIMEOUT_S - 1 + k * ANSWER_TIMEOUT_S for k in range(3)]
    assert device.registration is not None and device.registration.registered
    assert device.registration.bind_results == {}
    assert coordinator.requests() == AFTER_JOIN


def test_behind_a_meter_without_zdo_the_device_asks_at_once() -> None:
    clock = VirtualClock()
    device = make_device(DISPLAY, eui64_from_str(EUI), CODE, clock)
    coordinator = Coordinator(clock)
    device.attach(coordinator.uplink)  # a SimMeter attaches no ZDO
    device.on_joined()
    clock.advance(DISPLAY.join_delay_s + DISPLAY.answer_delay_s)
    assert coordinator.requests() == AFTER_JOIN


def test_a_listening_device_sends_nothing_and_a_time_poll_reads_time_and_status() -> None:
    clock = VirtualClock()
    device, coordinator = joined(clock, binds_to_esi=False, requests_after_join=False)
    clock.advance(60)
    assert coordinator.zcl == [] and coordinator.zdo == []

    clock = VirtualClock()
    t0 = clock.now()
    device, coordinator = joined(clock, binds_to_esi=False, requests_after_join=False, time_poll_s=5.0)
    clock.advance(DISPLAY.join_delay_s + 16)
    # join delay, then every 5 s, each read leaving after the profile's answer delay
    reads = [(round(t - t0, 2), f.fields["attribute_ids"]) for t, _c, f in coordinator.zcl]
    assert reads == [(5.55, [0, 1]), (10.55, [0, 1]), (15.55, [0, 1])]
    device.attach(coordinator.uplink)  # leaves and joins again at 16.5: one poll, from 17.0 on
    device.on_joined()  # (22.05, 27.05), not two
    clock.advance(DISPLAY.join_delay_s + 10.1)
    assert [round(t - t0, 2) for t, _c, _f in coordinator.zcl[3:]] == [22.05, 27.05]
    device.detach()
    clock.advance(60)
    assert len(coordinator.zcl) == 5


def test_basic_answers_what_the_profile_says_the_device_is() -> None:
    clock = VirtualClock()
    device, coordinator = joined(clock, binds_to_esi=False, requests_after_join=False)
    device.deliver(BASIC, encode_frame(BASIC, "read_attributes", {"attribute_ids": [4, 5, 0, 7, 0x4000, 0x10]},
                                       tsn=42))
    clock.advance(1)
    [(_t, cluster, frame)] = coordinator.zcl
    assert (cluster, frame.command, frame.tsn, frame.direction) == (
        BASIC, "read_attributes_response", 42, Direction.SERVER_TO_CLIENT)
    assert [(r["attribute_id"], r["status"], r.get("value")) for r in frame.fields["records"]] == [
        (4, 0, "Acme Displays"), (5, 0, "IHD-300"), (0, 0, 1), (7, 0, 1), (0x4000, 0, "4.3.0"), (0x10, 0x86, None)]


async def test_a_watched_device_puts_every_frame_it_hears_in_its_sink() -> None:
    clock = VirtualClock()
    device, _coordinator = joined(clock, binds_to_esi=False, requests_after_join=False)
    device.frames = heard = asyncio.Queue()
    text = encode_frame(MESSAGING, "display_message", {
        "message_id": 7, "message_control": 0, "start_time": 0, "duration_in_minutes": 1, "message": "hi"}, tsn=3)
    device.deliver(MESSAGING, text)
    device.deliver(MESSAGING, b"\x09\x04\x00\x01")  # too short a Display Message: not heard, answered
    cluster, frame = heard.get_nowait()
    assert (cluster, frame.command, frame.fields["message"]) == (MESSAGING, "display_message", "hi")
    assert heard.empty() and device.undecodable == 1


def test_profile_registration_fields_are_checked() -> None:
    base = {"id": "x", "vendor": "v", "model": "m", "firmware_version": "1", "se_version": "1.1",
            "device_type": "ihd", "clusters": ["time"]}
    with pytest.raises(FirmwareProfileError) as info:
        profile_from_dict({**base, "binds_to_esi": "yes"}, "x.toml")
    assert (info.value.field, info.value.value) == ("binds_to_esi", "yes")
    with pytest.raises(FirmwareProfileError, match="time_poll_s"):
        profile_from_dict({**base, "time_poll_s": -1}, "x.toml")
    profile = profile_from_dict({**base, "requests_after_join": False, "time_poll_s": 30}, "x.toml")
    assert (profile.binds_to_esi, profile.requests_after_join, profile.time_poll_s) == (False, False, 30.0)
