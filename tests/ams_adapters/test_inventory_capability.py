"""The route contract's optional HAN inventory capability (issue 13): every route of this project has
it; a route without it is told apart with a typed error; and the simulated field in its own process
(`hangw sim-field`, RemoteSimulatedRoute over real HTTP) answers it like the in-process route."""

from __future__ import annotations

import asyncio

import pytest

from ams_adapters.adapter import HeadEndAdapter
from ams_adapters.contract import Route, RouteCapabilities
from ams_adapters.inventory import (
    InventoryNotSupported,
    InventoryRoute,
    InventoryUnavailable,
    JoinState,
    han_inventory,
)
from ams_adapters.radio.route import RadioRoute
from sandbox.simfield import field_server_app, premises
from sandbox.simulated_route import RemoteSimulatedRoute, SimulatedRoute
from tests.gateway.conftest import start_server, stop_server


def test_every_route_of_the_project_has_the_capability() -> None:
    for route in (HeadEndAdapter, RadioRoute, SimulatedRoute, RemoteSimulatedRoute):
        assert issubclass(route, InventoryRoute), route


async def test_a_route_without_it_is_a_typed_refusal() -> None:
    class Minimal:
        capabilities = RouteCapabilities(name="minimal")

    with pytest.raises(InventoryNotSupported) as info:
        await han_inventory(Minimal(), "10443720000000001")  # type: ignore[arg-type]
    assert info.value.route == "minimal" and "no han_inventory" in str(info.value)
    assert not isinstance(Minimal(), Route)


async def test_the_simulated_field_in_its_own_process_answers_over_http() -> None:
    server, task, port = await start_server(field_server_app(per_tdsp=1, speed=20.0))
    route = RemoteSimulatedRoute(f"http://127.0.0.1:{port}")
    esi = premises(1)[0].esi_id
    try:
        async with asyncio.timeout(10):
            while True:  # the field's devices join half a (scaled) second after it starts
                inventory = await route.han_inventory(esi)
                if inventory.devices and all(d.join_state is JoinState.JOINED for d in inventory.devices):
                    break
                await asyncio.sleep(0.05)
        assert inventory.esi_id == esi and inventory.meter_id and len(inventory.devices) == 2
        assert all(d.device_type and d.last_seen for d in inventory.devices)
        with pytest.raises(InventoryUnavailable) as unknown:
            await route.han_inventory("10443729999999999")
        assert unknown.value.refused and "no such meter" in unknown.value.reason
    finally:
        await route.close()
        await stop_server(server, task)
