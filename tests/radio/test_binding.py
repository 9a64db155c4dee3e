"""Devices registering with the ESI (SE_BEHAVIOUR.md §6) through real bellows and the emulator:
Match_Desc for the DRLC server answered by the NCP from the ESI endpoint (and not contradicted by
zigpy), Bind_req for each SE client cluster kept in the NCP's binding table and reported by the
route, and a premise-wide price pushed to the bound device without it asking."""

from __future__ import annotations

import asyncio
import time

from ams_adapters.contract import METER, HanOperation, OperationKind, SubmitOutcome
from ams_adapters.radio import CoordinatorSession, DeviceBound, DeviceJoined, RadioConfig
from ams_adapters.radio.route import RadioRoute
from simulators.device import DRLC, MESSAGING, PRICE
from simulators.ncp import NcpEmulator, load_profile
from tests.radio.devices import display, registered
from zigbee_se import SEVersion

ESI = "10443720000000001"
EUI = "00:0d:6f:00:0a:90:69:e7"
CODE = "83FED3407A939723A5C639B26916D505C3B5"
MATCH_DESC_RSP = 0x8006


async def test_device_finds_the_esi_binds_and_gets_pushed_prices() -> None:
    emulator = NcpEmulator(load_profile("emberznet-7.4-mg24"))
    await emulator.serve_pty()
    sent_to_devices: list[int] = []
    emulator.ncp.listeners.append(
        lambda name, fields: sent_to_devices.append(int(fields["apsFrame"].clusterId))
        if name == "messageSentHandler" else None)
    route = RadioRoute(RadioConfig(device=emulator.path, use_thread=False), ESI)
    await route.start()
    radio = route.radio
    try:
        device = display(EUI, CODE, binds=True)
        joining = asyncio.create_task(radio.provision_device(EUI, CODE, 30))
        while emulator.ncp.stack.permit_until <= asyncio.get_running_loop().time():
            await asyncio.sleep(0.01)
        emulator.join(device)
        assert isinstance(await joining, DeviceJoined)
        await registered(device)

        # The NCP answered the Match_Desc from the ESI endpoint the route registered ...
        assert device.registration.esi_endpoints == [radio.config.se_endpoint]
        # ... and zigpy did not send its own (empty) answer to the same request.
        assert MATCH_DESC_RSP not in sent_to_devices
        assert device.registration.bind_results == {PRICE: 0, DRLC: 0, MESSAGING: 0}  # ZDO SUCCESS each
        assert sorted((c, str(e)) for _ep, c, e, _dep in emulator.ncp.nvram.bindings) == [
            (PRICE, EUI), (DRLC, EUI), (MESSAGING, EUI)]
        # The route saw the copies of the Bind_req (the contract route consumes the radio's
        # DeviceBound events; what they recorded is asked here).
        async with asyncio.timeout(5):
            while any(radio.bound_devices(c) != [EUI] for c in (PRICE, DRLC, MESSAGING)):
                await asyncio.sleep(0.05)

        # A premise-wide price reaches the bound device unasked.
        fields = {"provider_id": 1, "rate_label": "PEAK", "issuer_event_id": 31, "current_time": 0,
                  "unit_of_measure": 0, "currency": 840, "price_trailing_digit": 2, "price_tier": 1,
                  "number_of_price_tiers": 0, "register_tier": 1, "start_time": 0, "duration_in_minutes": 60,
                  "price": 1999, "price_control": 0}
        price = HanOperation("price-31", ESI, METER, OperationKind.PRICE, PRICE, "publish_price", fields,
                             SEVersion.V1_1, time.time() + 600)
        [accepted] = await route.submit([price])
        assert accepted.outcome is SubmitOutcome.ACCEPTED
        async with asyncio.timeout(5):
            while True:
                _cluster, frame = await device.frames.get()
                if frame.command == "publish_price":
                    break
        assert frame.fields["issuer_event_id"] == 31

        # Leaving forgets its bindings.
        emulator.leave(device)
        async with asyncio.timeout(5):
            while radio.bound_devices(PRICE):
                await asyncio.sleep(0.05)
    finally:
        await route.close()
        await emulator.close()


async def test_radio_route_reports_each_binding_as_an_event() -> None:
    emulator = NcpEmulator(load_profile("emberznet-7.4-mg24"))
    await emulator.serve_pty()
    radio = CoordinatorSession(RadioConfig(device=emulator.path, use_thread=False))
    await radio.start()
    try:
        device = display(EUI, CODE, binds=True)
        joining = asyncio.create_task(radio.provision_device(EUI, CODE, 30))
        while emulator.ncp.stack.permit_until <= asyncio.get_running_loop().time():
            await asyncio.sleep(0.01)
        emulator.join(device)
        assert isinstance(await joining, DeviceJoined)
        bound = []
        async with asyncio.timeout(10):
            while len(bound) < 3:
                event = await radio.next_event()
                if isinstance(event, DeviceBound):
                    bound.append(event)
        assert sorted(e.cluster_id for e in bound) == [PRICE, DRLC, MESSAGING]
        assert all((e.eui64, e.endpoint, e.bound) == (EUI, device.endpoint, True) for e in bound)
        # A restarted route reads the bindings back from the NCP's binding table.
        await radio.stop()
        radio = CoordinatorSession(RadioConfig(device=emulator.path, use_thread=False))
        await radio.start()
        assert [radio.bound_devices(c) for c in (PRICE, DRLC, MESSAGING)] == [[EUI]] * 3
    finally:
        await radio.stop()
        await emulator.close()
