"""The premise's HAN inventory through a real gateway over real HTTP, its route the simulated route on a
field whose clock is virtual (issue 13): "last seen" is the virtual moment the meter heard the
device, to the microsecond; a dark meter does not answer; a route without the operation, and a
premise no route reaches, are typed problems."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from ams_adapters.contract import (
    HanOperation,
    InboundEvent,
    MeterCapabilities,
    ProvisioningRequest,
    RouteCapabilities,
    SubmitResult,
)
from gateway.app import create_app
from gateway.clock import ManualClock
from gateway.domain.model import Role
from gateway.pipeline.dispatcher import RouteSet
from gateway.store.store import open_store
from sandbox.simfield import build_field, premises, premises_csv
from sandbox.simulated_route import SimulatedRoute
from simulators.addressing import eui64_str
from simulators.clock import VirtualClock
from tests.gateway.conftest import Gateway, gateway_config, start_server, stop_server
from tests.pipeline.conftest import CUSTOMER, running_stack


def _api(eui: bytes) -> str:
    return eui64_str(eui).replace(":", "").upper()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


async def test_last_seen_on_the_virtual_clock_and_a_dark_meter(tmp_path: Path) -> None:
    async with running_stack(tmp_path / "d", per_tdsp=1) as stack:
        premise = stack.premises[0]
        esi = premise.esi_id
        meter = stack.field.meter(esi)
        ihd, other = stack.devices[esi]
        # The IHD asks for the price at a virtual moment of the test's choosing.
        stack.clock.advance(300)
        ihd.send(0x0700, "get_current_price", {"command_options": 0})
        asked = stack.clock.now()
        stack.clock.advance(0.5)
        r = await stack.gw.client.get(f"/v1/premises/{esi}/han/devices?refresh=true", headers=stack.gw.op)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["taken_at"] == _iso(stack.clock.now())  # the field's clock: nothing else moved it
        seen = {d["eui64"]: d for d in body["meter"]}
        # Its request and whatever it sent after the meter answered it, both
        # within the half second the test let pass: the last of them, at its virtual moment.
        heard = meter.han.records[ihd.eui64].last_heard
        assert heard is not None and asked <= heard <= asked + 0.5 and seen[_api(ihd.eui64)]["last_seen"] == _iso(heard)
        other_heard = meter.han.records[other.eui64].last_heard
        assert other_heard is not None and seen[_api(other.eui64)]["last_seen"] == _iso(other_heard) != _iso(asked)
        assert all(d["join_state"] == "joined" for d in body["meter"])
        # Installed with the field, never provisioned through the gateway: both are differences.
        assert sorted((d["eui64"], d["kind"]) for d in body["differences"]) == sorted(
            (_api(d.eui64), "not_provisioned") for d in (ihd, other))

        # A third party's view: nothing of its own here, two others; nothing of theirs revealed.
        _p, token = await stack.gw.new_party("Acme", "123456789")
        await stack.customer(token, [esi])
        r = await stack.gw.client.get(f"/v1/premises/{esi}/han/devices", params={"refresh": "true"},
                                      headers=stack.gw.auth(token))
        assert r.status_code == 200, r.text
        assert (r.json()["meter"], r.json()["differences"], r.json()["others"]) == ([], [], 2)
        assert _api(ihd.eui64) not in r.text and CUSTOMER not in r.text

        stack.field.set_reachable(esi, False)
        r = await stack.gw.client.get(f"/v1/premises/{esi}/han/devices?refresh=true", headers=stack.gw.op)
        assert r.status_code == 504 and r.json()["code"] == "meter_did_not_answer", r.text
        assert "unreachable" in r.json()["detail"]
        r = await stack.gw.client.get(f"/v1/premises/{esi}/han/devices?refresh=maybe", headers=stack.gw.op)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "refresh", r.text


class LegacyRoute:
    """A route written before the capability existed (a third party's adapter): the contract's
    methods, over the simulated route, and no han_inventory."""

    def __init__(self, inner: SimulatedRoute) -> None:
        self.inner = inner

    @property
    def capabilities(self) -> RouteCapabilities:
        return RouteCapabilities(name="legacy-headend")

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def meter_capabilities(self, esi_id: str) -> MeterCapabilities:
        return await self.inner.meter_capabilities(esi_id)

    async def submit(self, batch: Sequence[HanOperation]) -> list[SubmitResult]:
        return await self.inner.submit(batch)

    async def provision(self, request: ProvisioningRequest) -> SubmitResult:
        return await self.inner.provision(request)

    def events(self) -> AsyncIterator[InboundEvent]:
        return self.inner.events()


@contextlib.asynccontextmanager
async def _gateway(data_dir: Path, routes: RouteSet, csv: str) -> AsyncIterator[Gateway]:
    config = gateway_config(data_dir)
    config.data_dir.mkdir(parents=True)
    store = await open_store(config.storage_url)
    clock = ManualClock()
    _cred, operator_token = await store.issue_credential(role=Role.OPERATOR, label="tests", now=clock.now())
    server, task, port = await start_server(create_app(config, store=store, clock=clock, run_timers=False,
                                                       routes=routes))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
            gw = Gateway(f"http://127.0.0.1:{port}", client, store, clock, config, operator_token)
            await gw.load_premises(csv)
            yield gw
    finally:
        await stop_server(server, task)
        await store.close()


async def test_a_route_without_the_operation_and_a_premise_without_a_route(tmp_path: Path) -> None:
    clock = VirtualClock(start=time.time())
    items = premises(1)  # one premise per TDSP
    field, _devices = build_field(clock, items)
    legacy = LegacyRoute(SimulatedRoute(field))
    by_tdsp = {p.tdsp: p.esi_id for p in items}
    routes = RouteSet(SimulatedRoute(field), {by_tdsp["tnmp"][:7]: None}, {by_tdsp["oncor"]: legacy})  # type: ignore[dict-item]
    async with _gateway(tmp_path / "d", routes, premises_csv(items, CUSTOMER)) as gw:
        r = await gw.client.get(f"/v1/premises/{by_tdsp['oncor']}/han/devices?refresh=true", headers=gw.op)
        problem: dict[str, Any] = r.json()
        assert r.status_code == 409 and problem["code"] == "route_cannot_report_inventory", r.text
        assert problem["errors"][0]["field"] == "esi_id" and "legacy-headend" in problem["detail"]
        r = await gw.client.get(f"/v1/premises/{by_tdsp['tnmp']}/han/devices?refresh=true", headers=gw.op)
        assert r.status_code == 409 and r.json()["code"] == "route_cannot_report_inventory", r.text
        assert "no route reaches" in r.json()["detail"]
        # Without refresh, neither is asked: the records (none) answer.
        r = await gw.client.get(f"/v1/premises/{by_tdsp['oncor']}/han/devices", headers=gw.op)
        assert r.status_code == 200 and r.json()["records"] == [] and r.json()["meter"] is None, r.text
        r = await gw.client.get(f"/v1/premises/{by_tdsp['centerpoint']}/han/devices?refresh=true", headers=gw.op)
        assert r.status_code == 200 and len(r.json()["meter"]) == 2, r.text
