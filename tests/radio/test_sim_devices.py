"""The simulators' own SE devices (firmware profiles from firmware_fixtures/devices) behind the
coordinator emulator, driven through the radio route: the emulator's device-facing interface is
exactly SimDevice's (eui64, install_code, attach, deliver, on_joined)."""

from __future__ import annotations

import asyncio

from ams_adapters.radio import (
    CoordinatorSession,
    Delivery,
    DeliveryResult,
    DeviceFrame,
    DeviceJoined,
    OutboundFrame,
    RadioConfig,
)
from simulators.addressing import eui64_from_str
from simulators.clock import RealClock
from simulators.factory import make_device
from simulators.ncp import NcpEmulator, load_profile
from simulators.ncp.han import Member, as_eui64
from simulators.profiles import load_profiles
from zigbee_se import Direction, encode_frame

IHD = "00:0d:6f:00:0a:90:69:e7"
PUMP = "00:0d:6f:00:0b:11:22:33"
CODE = bytes.fromhex("83FED3407A939723A5C639B26916D505C3B5")


async def answer(route: CoordinatorSession, eui64: str, command: str) -> DeviceFrame:
    async with asyncio.timeout(10):
        while True:
            event = await route.next_event()
            if isinstance(event, DeliveryResult):
                assert event.outcome is Delivery.DELIVERED, event
            if isinstance(event, DeviceFrame) and event.eui64 == eui64 and event.command == command:
                return event


async def test_simulated_display_and_pool_pump_answer_through_bellows() -> None:
    profiles = load_profiles()
    clock = RealClock()
    ihd = make_device(profiles["silabs-ihd"], eui64_from_str(IHD), CODE, clock)
    pump = make_device(profiles["silabs-pool-pump"], eui64_from_str(PUMP), CODE, clock)
    emulator = NcpEmulator(load_profile())
    await emulator.serve_pty()
    route = CoordinatorSession(RadioConfig(device=emulator.path, use_thread=False))
    try:
        await route.start()
        for device, eui64 in ((ihd, IHD), (pump, PUMP)):
            emulator.pair(device)
            joined = await route.provision_device(eui64, CODE.hex(), 30)
            assert isinstance(joined, DeviceJoined), joined

        price = encode_frame(
            "price",
            "publish_price",
            {
                "provider_id": 1,
                "rate_label": "PEAK",
                "issuer_event_id": 5,
                "current_time": 0,
                "unit_of_measure": 0,
                "currency": 840,
                "price_trailing_digit": 2,
                "price_tier": 1,
                "number_of_price_tiers": 0,
                "register_tier": 1,
                "start_time": 0,
                "duration_in_minutes": 60,
                "price": 1234,
                "price_control": 1,
            },
            tsn=3,
        )
        await route.submit([OutboundFrame("price-5", IHD, 0x0700, price)])
        ack = await answer(route, IHD, "price_acknowledgement")
        assert ack.fields is not None and ack.fields["issuer_event_id"] == 5

        event = encode_frame(
            "drlc",
            "load_control_event",
            {
                "issuer_event_id": 77,
                "device_class": 0x0FFF,
                "utility_enrollment_group": 0,
                "start_time": 0,
                "duration_in_minutes": 30,
                "criticality_level": 1,
                "event_control": 0,
            },
            tsn=4,
        )
        await route.submit([OutboundFrame("lce-77", PUMP, 0x0701, event)])
        status = await answer(route, PUMP, "report_event_status")
        assert status.fields is not None and status.fields["issuer_event_id"] == 77
        assert status.fields["event_status"] == 0x01  # event received
    finally:
        await route.stop()
        await emulator.close()


async def test_drlc_client_attributes_written_through_bellows_change_what_the_device_takes() -> None:
    """Write Attributes to a thermostat's DRLC client through the radio route and the EZSP
    emulator (bellows over a pty): the answer lists only failures, and the written enrollment
    group decides which load-control event the thermostat then takes."""
    profiles = load_profiles()
    clock = RealClock()
    pct = make_device(profiles["spec-pct"], eui64_from_str(PUMP), CODE, clock)
    emulator = NcpEmulator(load_profile())
    await emulator.serve_pty()
    route = CoordinatorSession(RadioConfig(device=emulator.path, use_thread=False))
    try:
        await route.start()
        emulator.pair(pct)
        joined = await route.provision_device(PUMP, CODE.hex(), 30)
        assert isinstance(joined, DeviceJoined), joined
        write = encode_frame(
            "drlc", "write_attributes",
            {"records": [{"attribute_id": "utility_enrollment_group", "value": 5},
                         {"attribute_id": "start_randomization_minutes", "value": 0x3D}]},
            direction=Direction.SERVER_TO_CLIENT, tsn=21)
        await route.submit([OutboundFrame("write-ueg", PUMP, 0x0701, write)])
        response = await answer(route, PUMP, "write_attributes_response")
        assert response.zcl_frame[1] == 21 and response.zcl_frame[3:] == bytes.fromhex("870100")
        events = []
        for iid, group in ((31, 7), (32, 5)):
            events.append(OutboundFrame(f"lce-{iid}", PUMP, 0x0701, encode_frame(
                "drlc", "load_control_event",
                {"issuer_event_id": iid, "device_class": 0x0001, "utility_enrollment_group": group,
                 "start_time": 0, "duration_in_minutes": 30, "criticality_level": 1,
                 "event_control": 0}, tsn=22 + iid)))
        await route.submit(events)
        status = await answer(route, PUMP, "report_event_status")
        assert status.fields is not None
        assert (status.fields["issuer_event_id"], status.fields["event_status"]) == (32, 0x01)
    finally:
        await route.stop()
        await emulator.close()


async def test_the_inventory_names_each_simulated_device_by_its_se_device_id() -> None:
    """Issue 13: the display advertised 0x0501 (a metering device) and was listed as a meter. Each
    kind's simple descriptor, read by zigpy's interview over bellows, gives its inventory type."""
    profiles = load_profiles()
    clock = RealClock()
    kinds = {"00:0d:6f:00:0a:90:69:e7": "silabs-ihd", "00:0d:6f:00:0b:11:22:33": "silabs-pool-pump",
             "00:0d:6f:00:0c:44:55:66": "silabs-pct"}
    emulator = NcpEmulator(load_profile())
    await emulator.serve_pty()
    route = CoordinatorSession(RadioConfig(device=emulator.path, use_thread=False))
    try:
        await route.start()
        for eui64, profile in kinds.items():
            emulator.pair(make_device(profiles[profile], eui64_from_str(eui64), CODE, clock))
            joined = await route.provision_device(eui64, CODE.hex(), 30)
            assert isinstance(joined, DeviceJoined), joined
        listed = {d.eui64: d.device_type for d in await route.inventory()}
        assert listed == {"00:0d:6f:00:0a:90:69:e7": "in_home_display",
                          "00:0d:6f:00:0b:11:22:33": "load_control_device",
                          "00:0d:6f:00:0c:44:55:66": "pct"}
    finally:
        await route.stop()
        await emulator.close()


def test_a_device_that_declares_no_device_id_is_emulated_as_an_in_home_display() -> None:
    class Bare:  # the emulator's minimum: identity and frame I/O, no simple descriptor
        eui64 = "00:0d:6f:00:0a:90:69:e7"
        install_code = None

    member = Member(device=Bare(), eui64=as_eui64(Bare.eui64), nwk=0x1234, link_key=None)
    assert (member.profile_id, member.device_type) == (0x0109, 0x0502)
