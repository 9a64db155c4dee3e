"""The radio route reads the meter over the HAN (issue 16), through real bellows and the EZSP
emulator on a pseudo-terminal: the simulated meter joins the coordinator's HAN as a Metering server
(simulators/metering_node.py) and answers in ZCL bytes.

- `read_meter`: CurrentSummationDelivered / InstantaneousDemand scaled by UnitofMeasure,
  Multiplier and Divisor — the same register the simulated route and the head-end routes read
  (`SimMeter.register_read`), to the Wh.
- `read_usage`: GetProfile, channel 0 (delivered) and 1 (received, a premise with solar), in
  several requests (20 periods each): exactly the meter's interval data (`SimMeter.read_usage`).
- a meter without GetProfile: `UsageNotSupported` naming the route; a meter that does not answer:
  `UsageUnavailable`; a HAN without a meter: `UsageNotSupported`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from ams_adapters.contract import ProvisioningKind, ProvisioningRequest, ProvisioningState, ProvisioningUpdate
from ams_adapters.radio import RadioConfig
from ams_adapters.radio.route import RadioRoute
from ams_adapters.usage import Channel, UsageNotSupported, UsageRoute, UsageUnavailable, read_meter, read_usage
from simulators.clock import VirtualClock
from simulators.meter import SimMeter
from simulators.metering_node import MeteringNode
from simulators.ncp import NcpEmulator, load_profile
from zigbee_se import parse_install_code

ESI = "10443720000000002"  # its simulated premise has solar: both GetProfile channels
METER_EUI = "00:0d:6f:00:0a:90:69:e8"
CODE = "83FED3407A939723A5C639B26916D505C3B5"


async def _joined(route: RadioRoute, eui64: str) -> None:
    result = await route.provision(ProvisioningRequest(
        "join-meter", ESI, ProvisioningKind.PROVISION_DEVICE, eui64=eui64,
        link_key=parse_install_code(CODE).link_key, join_window_s=86400))
    assert result.reference is not None or result.outcome.value == "accepted", result
    async with asyncio.timeout(15):
        async for event in route.events():
            if isinstance(event, ProvisioningUpdate) and event.state is ProvisioningState.JOINED:
                return
            assert not (isinstance(event, ProvisioningUpdate) and event.state is ProvisioningState.FAILED), event


@pytest.fixture
async def han() -> AsyncIterator[tuple[RadioRoute, MeteringNode, SimMeter]]:
    emu = NcpEmulator(load_profile("emberznet-7.4-mg24"))
    await emu.serve_pty()
    route = RadioRoute(RadioConfig(device=emu.path, use_thread=False, reconnect_min_s=0.05), ESI)
    await route.start()
    clock = VirtualClock(start=time.time(), seed=5)  # the meter's own clock: still while the test runs
    meter = SimMeter(ESI, clock)
    node = MeteringNode(meter, METER_EUI, CODE)
    emu.pair(node)
    try:
        await _joined(route, METER_EUI)
        yield route, node, meter
    finally:
        await route.close()
        await emu.close()


async def test_the_register_over_the_han_is_the_meters_register(han: tuple[RadioRoute, MeteringNode, SimMeter]) -> None:
    route, _node, meter = han
    before = time.time()
    got = await read_meter(route, ESI)
    register = meter.register_read()
    assert got.delivered_wh == register.delivered_wh > 0  # Divisor 1000, kWh: Wh exactly
    assert got.demand_w == int(meter.demand_w())  # InstantaneousDemand: the live load
    assert got.received_wh is None  # CurrentSummationReceived is not reported: unsupported attribute
    assert before - 1 <= got.read_at <= time.time() + 1


async def test_interval_data_through_get_profile(han: tuple[RadioRoute, MeteringNode, SimMeter]) -> None:
    route, node, meter = han
    assert isinstance(route, UsageRoute)
    end = int(meter.clock.now()) // 900 * 900
    start = end - 12 * 3600  # 48 periods a channel: three GetProfile requests each
    reads = await read_usage(route, ESI, start, end)
    model = meter.read_usage(start, end)
    assert [(r.start, r.length_s, r.channel.value, r.value_wh) for r in reads] == [
        (m.start, m.length_s, m.channel, m.value_wh) for m in model]
    channels = {r.channel for r in reads}
    assert channels == {Channel.CONSUMPTION, Channel.GENERATION}
    assert len([r for r in reads if r.channel is Channel.CONSUMPTION]) == 48
    asked = [frame for cluster, frame in node.heard if cluster == 0x0702 and frame[0] & 0x03 == 0x01]
    assert len(asked) >= 6  # GetProfile, 20 periods a request, both channels


async def test_a_meter_without_get_profile_and_a_silent_meter(han: tuple[RadioRoute, MeteringNode, SimMeter]) -> None:
    route, node, meter = han
    end = int(meter.clock.now()) // 900 * 900
    node.supports_profile = False
    with pytest.raises(UsageNotSupported, match="GetProfile") as info:
        await read_usage(route, ESI, end - 3600, end)
    assert info.value.route == "radio"
    assert (await read_meter(route, ESI)).delivered_wh == meter.register_read().delivered_wh  # reads still work
    node.answering = False
    route.radio.answer_timeout_s = 0.5
    with pytest.raises(UsageUnavailable, match="did not answer"):
        await read_meter(route, ESI)


async def test_a_han_without_a_meter_is_named() -> None:
    emu = NcpEmulator(load_profile("emberznet-7.4-mg24"))
    await emu.serve_pty()
    route = RadioRoute(RadioConfig(device=emu.path, use_thread=False, reconnect_min_s=0.05), ESI)
    await route.start()
    try:
        with pytest.raises(UsageNotSupported, match="no meter with a Metering server") as info:
            await read_meter(route, ESI)
        assert info.value.route == "radio"
    finally:
        await route.close()
        await emu.close()
