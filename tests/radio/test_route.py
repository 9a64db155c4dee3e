"""The radio route through the shared route contract, end to end: bellows, the emulator, a device."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ams_adapters.contract import (
    CAPABLE_DEVICES,
    METER,
    DeliveredToMeter,
    DeviceResponse,
    HanOperation,
    MeterReachability,
    OperationKind,
    ProvisioningKind,
    ProvisioningRequest,
    ProvisioningState,
    ProvisioningUpdate,
    Route,
    SubmitOutcome,
    Target,
    TargetKind,
)
from ams_adapters.radio import RadioConfig
from ams_adapters.radio.route import RadioRoute
from simulators.client_device import ClientDevice
from simulators.ncp import NcpEmulator, load_profile
from tests.radio.devices import display
from zigbee_se import SEVersion, parse_install_code

ESI = "10443720000000001"
EUI = "00:0d:6f:00:0a:90:69:e7"
CODE = "83FED3407A939723A5C639B26916D505C3B5"
DAY = 86400


def operation(  # noqa: PLR0917 - reads like the contract dataclass
    outbound_id: str, target: Target, kind: OperationKind, cluster: str, command: str,
              fields: dict[str, Any], *, expires_in: float = 3600, esi_id: str = ESI) -> HanOperation:
    cluster_id = {"messaging": 0x0703, "price": 0x0700, "drlc": 0x0701}[cluster]
    return HanOperation(outbound_id, esi_id, target, kind, cluster_id, command, fields, SEVersion.V1_1,
                        time.time() + expires_in)


def text(outbound_id: str, message_id: int, target: Target) -> HanOperation:
    return operation(outbound_id, target, OperationKind.TEXT, "messaging", "display_message", {
        "message_id": message_id, "message_control": 0x80, "start_time": 0, "duration_in_minutes": 30,
        "message": "Conserve 5-7pm"})


async def next_of(route: RadioRoute, kind: type, timeout: float = 10, **match: Any) -> Any:
    stream = route.events()
    async with asyncio.timeout(timeout):
        async for event in stream:
            if isinstance(event, kind) and all(getattr(event, k) == v for k, v in match.items()):
                return event
    raise AssertionError("unreachable")


@pytest.fixture
async def setup() -> AsyncIterator[tuple[RadioRoute, NcpEmulator, ClientDevice]]:
    emu = NcpEmulator(load_profile("emberznet-7.4-mg24"))
    await emu.serve_pty()
    route = RadioRoute(RadioConfig(device=emu.path, use_thread=False, reconnect_min_s=0.05), ESI)
    assert isinstance(route, Route)
    await route.start()
    device = display(EUI, CODE)
    emu.pair(device)  # in pairing mode: joins when the coordinator permits it with its key
    result = await route.provision(ProvisioningRequest(
        "join-1", ESI, ProvisioningKind.PROVISION_DEVICE, eui64=EUI,
        link_key=parse_install_code(CODE).link_key, join_window_s=DAY))
    assert result.outcome is SubmitOutcome.ACCEPTED
    states = []
    async with asyncio.timeout(10):
        async for event in route.events():
            if isinstance(event, ProvisioningUpdate):
                states.append(event.state)
                if event.state is ProvisioningState.JOINED:
                    assert (event.request_id, event.eui64) == ("join-1", EUI)
                    break
    assert states == [ProvisioningState.REQUESTED, ProvisioningState.FIND_PENDING, ProvisioningState.JOINED]
    yield route, emu, device
    await route.close()
    await emu.close()


async def test_text_to_a_device_is_delivered_and_confirmed(setup) -> None:
    route, _emu, _device = setup
    [accepted] = await route.submit([text("out-1", 501, Target(TargetKind.DEVICE, EUI))])
    assert accepted.outcome is SubmitOutcome.ACCEPTED and accepted.reference == "out-1"
    delivered = await next_of(route, DeliveredToMeter)
    assert (delivered.outbound_id, delivered.esi_id) == ("out-1", ESI)
    answer = await next_of(route, DeviceResponse, command="message_confirmation")
    assert (answer.outbound_id, answer.eui64, answer.fields["message_id"]) == ("out-1", EUI, 501)
    # idempotent by outbound id: the same item again is answered, not sent
    again = await route.submit([text("out-1", 501, Target(TargetKind.DEVICE, EUI))])
    assert again == [accepted]


async def test_price_to_the_meter_answers_device_requests(setup) -> None:
    route, _emu, device = setup
    price = operation("price-1", METER, OperationKind.PRICE, "price", "publish_price", {
        "provider_id": 1, "rate_label": "PEAK", "issuer_event_id": 88, "current_time": 0, "unit_of_measure": 0,
        "currency": 840, "price_trailing_digit": 2, "price_tier": 2, "number_of_price_tiers": 0,
        "register_tier": 2, "start_time": 0, "duration_in_minutes": 120, "price": 2599, "price_control": 1})
    [accepted] = await route.submit([price])
    assert accepted.outcome is SubmitOutcome.ACCEPTED
    assert (await next_of(route, DeliveredToMeter)).outbound_id == "price-1"
    device.send(0x0700, "get_current_price", {"command_options": 0})
    request = await next_of(route, DeviceResponse, command="get_current_price")
    assert request.eui64 == EUI
    async with asyncio.timeout(5):
        while True:
            _cluster, frame = await device.frames.get()
            if frame.command == "publish_price":
                break
    assert frame.fields["issuer_event_id"] == 88 and frame.fields["price"] == 2599
    ack = await next_of(route, DeviceResponse, command="price_acknowledgement")
    assert ack.outbound_id == "price-1"


async def test_event_to_capable_devices_and_its_status_report(setup) -> None:
    route, _emu, _device = setup
    event = operation("lce-1", CAPABLE_DEVICES, OperationKind.LOAD_CONTROL, "drlc", "load_control_event", {
        "issuer_event_id": 4242, "device_class": 0x0FFF, "utility_enrollment_group": 0, "start_time": 0,
        "duration_in_minutes": 30, "criticality_level": 3, "event_control": 0})
    [accepted] = await route.submit([event])
    assert accepted.outcome is SubmitOutcome.ACCEPTED
    assert (await next_of(route, DeliveredToMeter)).outbound_id == "lce-1"
    status = await next_of(route, DeviceResponse, command="report_event_status")
    assert (status.outbound_id, status.fields["issuer_event_id"], status.fields["event_status"]) == (
        "lce-1", 4242, 0x01)


async def test_refusals_reachability_and_deletion(setup) -> None:
    route, emu, _device = setup
    elsewhere = dataclasses.replace(text("x-1", 1, Target(TargetKind.DEVICE, EUI)), esi_id="999")
    [other] = await route.submit([elsewhere])
    assert other.outcome is SubmitOutcome.REJECTED and "this radio serves" in other.reason
    [late] = await route.submit([operation("x-2", Target(TargetKind.DEVICE, EUI), OperationKind.TEXT, "messaging",
                                           "cancel_message", {"message_id": 1, "message_control": 0},
                                           expires_in=-1)])
    assert late.outcome is SubmitOutcome.REJECTED and "expires_at" in late.reason

    emu.reset_ncp()
    assert (await next_of(route, MeterReachability)).reachable is False
    assert (await next_of(route, MeterReachability)).reachable is True

    result = await route.provision(ProvisioningRequest("del-1", ESI, ProvisioningKind.DELETE_DEVICE, eui64=EUI))
    assert result.outcome is SubmitOutcome.ACCEPTED
    deleted = await next_of(route, ProvisioningUpdate, state=ProvisioningState.DELETED)
    assert (deleted.request_id, deleted.eui64) == ("del-1", EUI)
    init = await route.provision(ProvisioningRequest("init-1", ESI, ProvisioningKind.INITIALIZE_HAN))
    assert init.outcome is SubmitOutcome.ACCEPTED
    assert (await next_of(route, ProvisioningUpdate, state=ProvisioningState.DONE)).request_id == "init-1"


async def test_decommission_takes_the_han_down(setup) -> None:
    route, emu, device = setup
    decommission = await route.provision(ProvisioningRequest("d-1", ESI, ProvisioningKind.DECOMMISSION_HAN))
    assert decommission.outcome is SubmitOutcome.ACCEPTED
    deleted = await next_of(route, ProvisioningUpdate, state=ProvisioningState.DELETED, request_id="d-1")
    assert deleted.eui64 == EUI
    assert (await next_of(route, ProvisioningUpdate, state=ProvisioningState.DONE)).request_id == "d-1"
    # The device was asked to leave, the coordinator has no network, the inventory is empty.
    assert not emu.ncp.members and not emu.ncp.nvram.formed
    assert await route.radio.inventory() == []
    [gone] = await route.radio.inventory(include_removed=True)
    assert (gone.eui64, gone.state.value, gone.reason) == (EUI, "removed", "HAN decommissioned")
    [later] = await route.submit([text("after", 7, Target(TargetKind.DEVICE, EUI))])
    assert later.outcome is SubmitOutcome.RETRY_LATER
    frames = [device.frames.get_nowait()[1] for _ in range(device.frames.qsize())]
    assert "display_message" not in [f.command for f in frames]


async def test_backup_file_is_written_after_forming_and_restored_onto_a_blank_stick(tmp_path) -> None:
    backup = tmp_path / "han-backup.json"
    first = NcpEmulator(load_profile("emberznet-7.4-mg24"))
    await first.serve_pty()
    route = RadioRoute(RadioConfig(device=first.path, use_thread=False), ESI, backup_file=backup)
    await route.start()
    await route.close()
    await first.close()
    assert first.ncp.nvram.formed and backup.exists()
    assert oct(backup.stat().st_mode & 0o777) == "0o600"  # it holds the network key

    replacement = NcpEmulator(load_profile("emberznet-7.3-mg21"))
    await replacement.serve_pty()
    route = RadioRoute(RadioConfig(device=replacement.path, use_thread=False), ESI, backup_file=backup)
    try:
        await route.start()  # the blank stick gets the old network, not a new one
        nv, old = replacement.ncp.nvram, first.ncp.nvram
        assert nv.formed and nv.eui64 == old.eui64
        assert nv.parameters.extendedPanId == old.parameters.extendedPanId
        assert nv.security.networkKey == old.security.networkKey
    finally:
        await route.close()
        await replacement.close()
