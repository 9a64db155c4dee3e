"""The radio route's state in the gateway's database: inventory in han_devices, outbound records,
and a route restarted on the same database not sending an outbound id again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ams_adapters.radio import CoordinatorSession, Delivery, DeliveryResult, DeviceJoined, OutboundFrame, RadioConfig
from ams_adapters.radio.state import DeviceState, OutboundState, RouteStateStore
from gateway.store.route_state import GatewayRouteState, PremiseNotFound, store_eui64
from gateway.store.store import Store, open_store
from simulators.client_device import ClientDevice
from simulators.device import MESSAGING
from simulators.ncp import NcpEmulator, load_profile
from tests.radio.devices import display
from zigbee_se import encode_frame

ESI = "10443720000000001"
EUI = "00:0d:6f:00:0a:90:69:e7"
CODE = "83FED3407A939723A5C639B26916D505C3B5"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


async def with_premise(url: str) -> Store:
    store = await open_store(url)
    await store.upsert_premise({
        "esi_id": ESI, "tdsp": "oncor", "meter_number": "MTR-1", "customer_email": None, "rep": None,
        "premise_class": "residential", "se_version": "1.1", "enhanced_meter": False}, NOW)
    return store


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'g.db'}"
    url: str = request.getfixturevalue("migrated_pg_url")
    return url


@pytest.fixture
async def store(db_url: str) -> Any:
    s = await with_premise(db_url)
    yield s
    await s.close()


async def test_outbound_records_and_inventory(store: Store) -> None:
    state = GatewayRouteState(store, ESI)
    assert isinstance(state, RouteStateStore)
    await state.check_premise()
    assert await state.outbound("o-1") is None
    await state.record_outbound("o-1", EUI, OutboundState.QUEUED)
    await state.record_outbound("o-1", EUI, OutboundState.SENDING)
    assert [r.outbound_id for r in await state.pending_outbound()] == ["o-1"]
    await state.record_outbound("o-1", EUI, OutboundState.DELIVERED)
    # A final outcome is never replaced by an earlier state (a late duplicate write).
    await state.record_outbound("o-1", EUI, OutboundState.SENDING)
    record = await state.outbound("o-1")
    assert record is not None and (record.eui64, record.state) == (EUI, OutboundState.DELIVERED)
    assert await state.pending_outbound() == []

    await state.upsert_device(EUI, DeviceState.PROVISION_REQUESTED)
    await state.upsert_device(EUI, DeviceState.JOINED, nwk=0x1234, device_type="in_home_display")
    [device] = await state.devices()
    assert (device.eui64, device.state, device.nwk, device.device_type) == (
        EUI, DeviceState.JOINED, 0x1234, "in_home_display")
    # The API's view of the same premise sees the same row.
    [api_row] = (await store.list_devices(ESI)).items
    assert (api_row.eui64, api_row.status.value) == (store_eui64(EUI), "joined")

    await state.upsert_device(EUI, DeviceState.REMOVED, reason="left the HAN")
    assert await state.devices() == []
    [gone] = await state.devices(include_removed=True)
    assert (gone.reason, gone.nwk) == ("left the HAN", 0x1234)
    await state.upsert_device(EUI, DeviceState.JOINED, nwk=0x2222)
    assert await state.forget_devices() == 1
    forgotten = await state.device(EUI)
    assert forgotten is not None and forgotten.state is DeviceState.REMOVED
    assert forgotten.reason == "HAN decommissioned"


async def test_unknown_premise_and_bad_eui64_are_named(store: Store) -> None:
    with pytest.raises(PremiseNotFound, match="10443720000000999"):
        await GatewayRouteState(store, "10443720000000999").check_premise()
    with pytest.raises(ValueError, match="eui64='00:0d'"):
        await GatewayRouteState(store, ESI).upsert_device("00:0d", DeviceState.JOINED)


def text(outbound_id: str, message_id: int) -> OutboundFrame:
    frame = encode_frame("messaging", "display_message", {
        "message_id": message_id, "message_control": 0x80, "start_time": 0, "duration_in_minutes": 60,
        "message": "restart"}, tsn=message_id % 256)
    return OutboundFrame(outbound_id, EUI, MESSAGING, frame)


def displayed(device: ClientDevice) -> list[int]:
    """Message ids of the Display Messages the device received since last asked."""
    ids = []
    while not device.frames.empty():
        _cluster, frame = device.frames.get_nowait()
        if frame.command == "display_message":
            ids.append(frame.fields["message_id"])
    return ids


async def next_result(route: CoordinatorSession, outbound_id: str) -> DeliveryResult:
    async with asyncio.timeout(10):
        while True:
            event = await route.next_event()
            if isinstance(event, DeliveryResult) and event.outbound_id == outbound_id:
                return event


async def test_restarted_route_never_sends_an_outbound_id_twice(tmp_path: Path) -> None:
    """Route A sends one text (delivered) and is stopped in the middle of sending a second (the
    device is powered off, so no ACK comes before the stop): its record stays "sending". Route B,
    a fresh process on the same database, gets both ids again: it sends neither."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'g.db'}"
    emulator = NcpEmulator(load_profile("emberznet-7.4-mg24"))
    await emulator.serve_pty()
    device = display(EUI, CODE)
    stores: list[Store] = []
    try:
        stores.append(await with_premise(url))
        config = RadioConfig(device=emulator.path, use_thread=False, database_path=str(tmp_path / "zigpy.db"))
        a = CoordinatorSession(config, state=GatewayRouteState(stores[0], ESI))
        await a.start()
        joining = asyncio.create_task(a.provision_device(EUI, CODE, 30))
        while emulator.ncp.stack.permit_until <= asyncio.get_running_loop().time():
            await asyncio.sleep(0.01)
        emulator.join(device)
        assert isinstance(await joining, DeviceJoined)
        await a.submit([text("out-1", 1)])
        assert (await next_result(a, "out-1")).outcome is Delivery.DELIVERED
        emulator.set_reachable(device, False)
        await a.submit([text("out-2", 2)])
        while (await a.state.outbound("out-2")).state is not OutboundState.SENDING:  # type: ignore[union-attr]
            await asyncio.sleep(0.01)
        await a.stop()  # "killed": the send's outcome was never learnt
        emulator.set_reachable(device, True)
        assert displayed(device) == [1]

        stores.append(await open_store(url))
        state_b = GatewayRouteState(stores[1], ESI)
        b = CoordinatorSession(config, state=state_b)
        await b.start()
        try:
            results = await b.submit([text("out-1", 1), text("out-2", 2)])
            assert [r.outcome.value for r in results] == ["accepted", "accepted"]
            assert (await next_result(b, "out-1")).outcome is Delivery.DELIVERED
            unknown = await next_result(b, "out-2")
            assert unknown.outcome is Delivery.UNKNOWN and "not repeated" in (unknown.reason or "")
            await asyncio.sleep(0.5)  # anything wrongly queued would have gone out by now
            assert displayed(device) == []  # nothing more reached the device
            [joined] = await b.inventory()
            assert (joined.eui64, joined.state) == (EUI, DeviceState.JOINED)
        finally:
            await b.stop()
    finally:
        for s in stores:
            await s.close()
        await emulator.close()
