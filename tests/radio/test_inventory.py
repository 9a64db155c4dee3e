"""The radio route answers "what is on the HAN" from its coordinator (issue 13), end to end: bellows
over a pty to the EZSP emulator, devices joined, pending and refused. Times come from the route's
own clock, set by the test, so "last seen" is checked exactly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ams_adapters.contract import (
    ProvisioningKind,
    ProvisioningRequest,
    ProvisioningState,
    ProvisioningUpdate,
    SubmitOutcome,
)
from ams_adapters.inventory import HanInventory, InventoryUnavailable, JoinState, han_inventory
from ams_adapters.radio import RadioConfig
from ams_adapters.radio.route import RadioRoute
from simulators.client_device import ClientDevice
from simulators.ncp import NcpEmulator, load_profile
from tests.radio.devices import display
from zigbee_se import parse_install_code
from zigbee_se.clusters import se_device_type_name

ESI = "10443720000000001"
EUI = "00:0d:6f:00:0a:90:69:e7"
CODE = "83FED3407A939723A5C639B26916D505C3B5"
OTHER = "00:0d:6f:00:0a:90:69:e8"
DAY = 86400


class StepClock:
    """The route's clock, moved by the test."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t


async def _until_state(route: RadioRoute, request_id: str, state: ProvisioningState, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        async for event in route.events():
            if isinstance(event, ProvisioningUpdate) and event.request_id == request_id and event.state is state:
                return


def _provision(request_id: str, eui64: str) -> ProvisioningRequest:
    return ProvisioningRequest(request_id, ESI, ProvisioningKind.PROVISION_DEVICE, eui64=eui64,
                               link_key=parse_install_code(CODE).link_key, join_window_s=DAY)


@pytest.fixture
async def joined() -> AsyncIterator[tuple[RadioRoute, NcpEmulator, ClientDevice, StepClock]]:
    emu = NcpEmulator(load_profile("emberznet-7.4-mg24"))
    await emu.serve_pty()
    clock = StepClock()
    route = RadioRoute(RadioConfig(device=emu.path, use_thread=False, reconnect_min_s=0.05,
                                   reconnect_max_s=0.2), ESI, clock=clock)
    await route.start()
    device = display(EUI, CODE)
    emu.pair(device)
    assert (await route.provision(_provision("join-1", EUI))).outcome is SubmitOutcome.ACCEPTED
    await _until_state(route, "join-1", ProvisioningState.JOINED)
    yield route, emu, device, clock
    await route.close()
    await emu.close()


async def test_joined_device_with_type_and_last_heard_frame(joined) -> None:
    route, _emu, device, clock = joined
    inventory = await han_inventory(route, ESI)
    assert isinstance(inventory, HanInventory)
    assert (inventory.esi_id, inventory.taken_at) == (ESI, clock.t)
    node = route.radio.app.state.node_info.ieee
    assert inventory.meter_id == str(node)
    [dev] = inventory.devices
    assert (dev.eui64, dev.join_state) == (EUI, JoinState.JOINED)
    assert dev.device_type == se_device_type_name(device.device_type)  # from its Simple Descriptor
    assert dev.se_version is None  # a coordinator cannot tell a device's SE version
    # An SE frame from the device at a later (route) time: last seen, with the last hop's link.
    clock.t += 120
    device.send(0x0700, "get_current_price", {"command_options": 0})
    async with asyncio.timeout(5):
        while route.radio._heard.get(EUI, (0.0,))[0] != clock.t:
            await asyncio.sleep(0.02)
    clock.t += 5
    [dev] = (await route.han_inventory(ESI)).devices
    assert dev.last_seen == clock.t - 5
    assert (dev.lqi, dev.rssi) == (255, -45)  # what the emulated EmberZNet reports for every frame


async def test_pending_and_refused_devices_and_a_removed_one(joined) -> None:
    route, _emu, _device, _clock = joined
    # Provisioned, nobody pressing the device's button: its window is open.
    assert (await route.provision(_provision("wait-1", OTHER))).outcome is SubmitOutcome.ACCEPTED
    async with asyncio.timeout(5):
        while OTHER not in route.radio._joins:
            await asyncio.sleep(0.02)
    states = {d.eui64: d.join_state for d in (await route.han_inventory(ESI)).devices}
    assert states == {EUI: JoinState.JOINED, OTHER: JoinState.PROVISION_REQUESTED}
    # A device whose window lapses (one second, below the contract's day: through the session):
    # the coordinator refused it, with the reason.
    third = "00:0d:6f:00:0a:90:69:e9"
    await route.radio.admit(third, parse_install_code(CODE).link_key, 1)
    by_eui = {d.eui64: d for d in (await route.han_inventory(ESI)).devices}
    assert by_eui[third].join_state is JoinState.FAILED and "no join within 1s" in (by_eui[third].reason or "")
    # Removed: no longer on the HAN.
    assert (await route.provision(ProvisioningRequest("del-1", ESI, ProvisioningKind.DELETE_DEVICE,
                                                      eui64=EUI))).outcome is SubmitOutcome.ACCEPTED
    await _until_state(route, "del-1", ProvisioningState.DELETED)
    assert EUI not in {d.eui64 for d in (await route.han_inventory(ESI)).devices}


async def test_unplugged_coordinator_and_another_premise_are_typed_errors(joined) -> None:
    route, emu, _device, _clock = joined
    with pytest.raises(InventoryUnavailable, match="this radio serves") as refused:
        await route.han_inventory("10443720000000002")
    assert refused.value.refused
    await emu.unplug()
    async with asyncio.timeout(5):
        while route.radio.reachable:
            await asyncio.sleep(0.02)
    with pytest.raises(InventoryUnavailable, match="coordinator unreachable") as dark:
        await route.han_inventory(ESI)
    assert dark.value.retry_after_s == 0.2 and not dark.value.refused
