"""Provisioning operations with two gateway instances on one PostgreSQL database (issue 14), each
its own app (REST API, dispatcher, provisioning sender) with its own store and its own adapter
route to the same emulated TNMP head-end (binary TCP) over real sockets.

- An instance that starts does not send again an operation another live instance's route is
  following (`submitted`): the head-end gets each request once. (Before, every start re-sent all
  of them.)
- An instance that stops gracefully (the lifespan's shutdown, what SIGTERM runs) hands its
  operations back at once: the other instance sends the followed one again (same request id, so the
  head-end carries nothing out twice) well before the lease (`provisioning_lease_seconds`, 120 s
  here) would have run out, and follows it to its end: the device joins, seen through its API.

Counted outside the gateways: the requests the head-end received (its duplicate count).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from cryptography.fernet import Fernet

from ams_adapters.profiles import load_profile
from gateway.app import create_app
from gateway.cli.serve import build_routes
from gateway.clock import SystemClock
from gateway.domain.model import Role
from gateway.store.schema import han_provisioning_ops
from gateway.store.store import open_store
from sandbox.headends import headend_for_profile
from simulators.addressing import eui64_str
from simulators.clock import RealClock
from simulators.headends.factory import HeadEnd
from tests.adapters.gateway_rig import FLEET_PREFIX, adapter_routes_config
from tests.adapters.harness import QuickFleet
from tests.gateway.conftest import start_server, stop_server

LEASE_S = 120.0


@contextlib.asynccontextmanager
async def instance(data: Path, headend: HeadEnd, url: str, key: str) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """One gateway instance on the shared database: its HTTP client (operator) and its store."""
    config = adapter_routes_config(data, {"tnmp": ("binary", headend)}, "unused", key,
                                   pipeline={"provisioning_lease_seconds": LEASE_S}, storage={"url": url})
    config.data_dir.mkdir(parents=True)
    store = await open_store(url)
    clock = SystemClock()
    _cred, token = await store.issue_credential(role=Role.OPERATOR, label="t", now=clock.now())
    app = create_app(config, store=store, clock=clock, run_timers=False, routes=build_routes(config, store))
    server, task, port = await start_server(app)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20,
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            yield client, store
    finally:
        await stop_server(server, task)  # the graceful stop: the lifespan's shutdown runs
        await store.close()


async def _op(store: Any) -> Any:
    async with store.engine.connect() as conn:
        return (await conn.execute(sa.select(han_provisioning_ops))).one()


async def _until(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := await check()):
        assert time.monotonic() < deadline, f"not within {timeout} s"
        await asyncio.sleep(0.05)
    return result


async def test_a_live_instances_operation_is_left_to_it_and_handed_over_at_a_graceful_stop(
        tmp_path: Path, migrated_pg_url: str) -> None:
    key = Fernet.generate_key().decode()
    clock = RealClock(seed=5)
    fleet = QuickFleet(1, clock, esi_prefix=FLEET_PREFIX["tnmp"])
    esi = fleet.esi_id(0)
    fleet.meter(esi).initialize_han()
    ihd = fleet.devices(esi)[0]
    eui = eui64_str(ihd.eui64).replace(":", "").upper()
    code = " ".join(ihd.install_code.hex().upper()[i:i + 4] for i in range(0, 36, 4))
    headend = headend_for_profile(load_profile("tnmp").with_transport("binary"), fleet, clock)
    await headend.start()
    core = headend.core
    a_alive = contextlib.AsyncExitStack()
    try:
        a, a_store = await a_alive.enter_async_context(instance(tmp_path / "a", headend, migrated_pg_url, key))
        r = await a.post("/v1/premises/import", headers={"Content-Type": "text/csv"}, content=(
            "esi_id,meter_number,customer_email,rep,premise_class,se_version,enhanced_meter\n"
            f"{esi},M-0,pat@example.test,Volt REP,residential,1.1,no\n"))
        assert r.status_code == 200, r.text
        # Nobody presses the device's join button yet: A's route follows the operation.
        r = await a.post(f"/v1/premises/{esi}/devices", json={
            "eui64": eui, "device_type": "in_home_display", "install_code": code})
        assert r.status_code == 201, r.text

        def submitted(store: Any) -> Any:
            async def check() -> Any:
                op = await _op(store)
                return op if op.state == "submitted" else None
            return check
        first = await _until(submitted(a_store))
        assert len(core.transactions) == 1 and core.stats["duplicate_requests"] == 0

        async with instance(tmp_path / "b", headend, migrated_pg_url, key) as (b, b_store):
            await asyncio.sleep(1.5)  # B started and ran its passes: A is alive, the operation A's
            assert core.stats["duplicate_requests"] == 0, core.stats
            assert (await _op(b_store)).attempts == first.attempts

            stopped = time.monotonic()
            await a_alive.aclose()  # A stops gracefully
            # B sends it again (the same request: the head-end knows it) and follows it.
            await _until(lambda: _true(core.stats["duplicate_requests"] == 1))
            taken_over_s = time.monotonic() - stopped
            op = await _until(submitted(b_store))  # and B records that its route took it
            assert op.attempts == first.attempts + 1, op
            print(f"taken over {taken_over_s:.2f} s after the graceful stop (lease {LEASE_S:.0f} s)")
            assert taken_over_s < LEASE_S / 10, taken_over_s
            clock.call_later(0.05, fleet.meter(esi).join, ihd)  # the customer presses the button

            async def joined() -> Any:
                d = (await b.get(f"/v1/premises/{esi}/devices/{eui}")).json()
                return d if d["status"] == "joined" else None
            device = await _until(joined)
            assert [h["state"] for h in device["history"]][-1] == "joined", device
            assert core.stats["duplicate_requests"] == 1 and len(core.transactions) == 1
    finally:
        await a_alive.aclose()
        await headend.close()


async def _true(value: bool) -> bool:
    return value
