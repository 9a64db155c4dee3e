"""A real gateway on a loopback port with the simulated route over a simulated field on a virtual
clock (the field's time moves only when a test advances it), plus helpers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway.app import create_app
from gateway.clock import ManualClock
from gateway.domain.model import Role
from gateway.pipeline.dispatcher import RouteSet
from sandbox.simfield import SimPremise, build_field, premises, premises_csv
from sandbox.simulated_route import SimulatedRoute
from simulators.clock import VirtualClock
from tests.gateway.conftest import Gateway, gateway_config, open_test_store, start_server, stop_server

CUSTOMER = "pat@example.test"


@dataclass
class Stack:
    gw: Gateway
    clock: VirtualClock
    field: Any
    devices: dict[str, list[Any]]
    premises: list[SimPremise]
    route: SimulatedRoute

    async def advance(self, seconds: float, step: float = 1.0) -> None:
        """Move the field's time on, letting the gateway consume what the devices answer."""
        done = 0.0
        while done < seconds:
            self.clock.advance(min(step, seconds - done))
            done += step
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)

    async def eventually(self, check: Callable[[], Any], timeout: float = 10.0,
                         advance: float = 0.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = await check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met in {timeout} s: last {result!r}")
            if advance:
                await self.advance(advance)
            await asyncio.sleep(0.05)

    async def request(self, token: str, body: dict[str, Any]) -> httpx.Response:
        return await self.gw.client.post("/v1/han-requests", headers=self.gw.auth(token), json=body)

    async def summary(self, token: str, request_id: int) -> dict[str, Any]:
        r = await self.gw.client.get(f"/v1/han-requests/{request_id}", headers=self.gw.auth(token))
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result

    async def deliveries(self, token: str, request_id: int, **params: Any) -> list[dict[str, Any]]:
        r = await self.gw.client.get(f"/v1/han-requests/{request_id}/deliveries",
                                     headers=self.gw.auth(token), params=params)
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items

    def received(self, esi_id: str, command_byte: int | None = None) -> int:
        """Frames the premise's devices got from the meter (counted at the simulated devices)."""
        return sum(d.frames_in for d in self.devices[esi_id])

    async def customer(self, token: str, esi_ids: list[str], scopes: list[str] | None = None) -> int:
        by_id = {p.esi_id: p for p in self.premises}
        r = await self.gw.invite(token, esi_ids=[(e, by_id[e].meter_number) for e in esi_ids],
                                 email=CUSTOMER, scopes=scopes)
        assert r.status_code == 201, r.text
        accepted = await self.gw.consent(CUSTOMER)
        assert accepted.status_code == 200, accepted.text
        agreement_id: int = r.json()["id"]
        return agreement_id


@contextlib.asynccontextmanager
async def running_stack(data_dir: Path, per_tdsp: int = 2, no_route_prefix: str | None = None,
                        **sections: Any) -> AsyncIterator[Stack]:
    config = gateway_config(data_dir, pipeline={"poll_interval_seconds": 0.05, **sections.pop("pipeline", {})},
                            **sections)
    config.data_dir.mkdir(parents=True)
    store = await open_test_store(config)
    clock = ManualClock()
    _cred, operator_token = await store.issue_credential(role=Role.OPERATOR, label="tests", now=clock.now())
    vclock = VirtualClock(start=time.time() - 120, seed=7)  # after the settling below: about now
    items = premises(per_tdsp)
    field, devices = build_field(vclock, items)
    vclock.advance(120)  # joins and the devices' first requests settle
    route = SimulatedRoute(field)
    routes = RouteSet(route, {no_route_prefix: None} if no_route_prefix else None)
    app = create_app(config, store=store, clock=clock, run_timers=False, routes=routes)
    server, task, port = await start_server(app)
    base_url = f"http://127.0.0.1:{port}"
    config.server.public_url = base_url
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
            gw = Gateway(base_url, client, store, clock, config, operator_token)
            await gw.load_premises(premises_csv(items, CUSTOMER))
            yield Stack(gw, vclock, field, devices, items, route)
    finally:
        await stop_server(server, task)
        await store.close()


def frames_sent(field: Any) -> list[tuple[str, int, bytes]]:
    """(ESI ID, cluster, frame) of every frame handed to the field's meters (by the simulated
    route or an emulated head-end), seen as the sandbox's FrameCounter sees them: the field is the peer."""
    sent: list[tuple[str, int, bytes]] = []
    inner = field.send

    def send(esi_id: str, address: Any, cluster_id: int, frame: bytes) -> int:
        sent.append((esi_id, cluster_id, bytes(frame)))
        result: int = inner(esi_id, address, cluster_id, frame)
        return result

    field.send = send
    return sent
