"""A real gateway (`hangw serve`'s app, `[routes] kind = "adapters"`) on a loopback port whose
routes are the TDSP adapters built from its config, each talking to an in-process emulated
head-end over real sockets (and the real Mosquitto for 61968-9). The emulated fleets use the
TDSPs' own ESI ID prefixes so the gateway's prefix table sends each premise to its head-end."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

from ams_adapters.profiles import load_profile
from gateway.app import create_app
from gateway.cli.serve import build_routes
from gateway.clock import ManualClock
from gateway.config import GatewayConfig
from gateway.domain.model import Role
from gateway.store.store import Store
from sandbox.headends import headend_for_profile
from simulators.clock import RealClock
from simulators.headends.factory import HeadEnd
from simulators.meter import HanEvent
from tests.adapters.harness import MQTT, QuickFleet
from tests.gateway.conftest import Gateway, gateway_config, open_test_store, start_server, stop_server

# ESI ID prefix of each TDSP's emulated fleet: the TDSP prefix (DOMAIN.md), padded so that
# prefix + 10 index digits has the TDSP's length (CenterPoint: 22 digits, others 17).
FLEET_PREFIX = {"oncor": "1044372", "centerpoint": "100890100000", "aep_central": "1003278",
                "aep_north": "1020404", "tnmp": "1040051"}
CUSTOMER = "pat@example.test"


def press_join_buttons(fleets: dict[str, QuickFleet], clock: RealClock, no_button: set[bytes]) -> None:
    """Once a meter opens a device's join window, the device (one of the premise's own, not in
    `no_button`) asks to join 50 ms later, as if the customer pressed its button."""
    for fleet in fleets.values():
        def press(event: object, fleet: QuickFleet = fleet) -> None:
            if isinstance(event, HanEvent) and event.kind == "provisioned" and event.eui64 is not None:
                for dev in fleet.devices(event.meter_id):
                    if dev.eui64 == event.eui64 and dev.eui64 not in no_button:
                        clock.call_later(0.05, fleet.meter(event.meter_id).join, dev)
        fleet.subscribe(press)


@dataclass
class GatewayRig:
    gw: Gateway
    store: Store
    fleets: dict[str, QuickFleet]
    headends: dict[str, HeadEnd]
    clock: RealClock
    meters: dict[str, str] = field(default_factory=dict)  # ESI ID -> meter number
    no_button: set[bytes] = field(default_factory=set)  # devices whose customer never presses join

    def auto_join(self) -> None:
        """Once the meter opens a device's join window, the device (if it is one of the premise's
        own) asks to join 50 ms later, as if the customer pressed its button."""
        press_join_buttons(self.fleets, self.clock, self.no_button)

    async def eventually(self, check: Callable[[], Any], timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = await check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met in {timeout} s: last {result!r}")
            await asyncio.sleep(0.05)

    async def customer(self, token: str, esi_ids: list[str], *, kind: str = "in_home_device_services",
                       scopes: list[str] | None = None) -> int:
        r = await self.gw.invite(token, esi_ids=[(e, self.meters[e]) for e in esi_ids], email=CUSTOMER, kind=kind,
                                 scopes=scopes)
        assert r.status_code == 201, r.text
        accepted = await self.gw.consent(CUSTOMER)
        assert accepted.status_code == 200, accepted.text
        agreement_id: int = r.json()["id"]
        return agreement_id


def adapter_routes_config(data_dir: Path, tdsps: dict[str, tuple[str, HeadEnd]], prefix: str,
                          device_key: str | None = None, profiles: dict[str, dict[str, Any]] | None = None,
                          **sections: Any) -> GatewayConfig:
    tables: dict[str, Any] = {}
    for tdsp, (transport, headend) in tdsps.items():
        port = MQTT[1] if transport == "cim" else headend.port  # type: ignore[attr-defined]
        tables[tdsp] = {"transport": transport, "url": f"http://127.0.0.1:{port}", "host": "127.0.0.1",
                        "port": port, "topic_prefix": f"{prefix}/{tdsp}", "client_id": f"gw-{uuid.uuid4().hex[:8]}",
                        "profile": (profiles or {}).get(tdsp, {})}
    routes = {"kind": "adapters", "tdsp": tables}
    security = {"device_key_secret": device_key or Fernet.generate_key().decode()}
    return gateway_config(data_dir, routes=routes, security=security,
                          pipeline={"poll_interval_seconds": 0.05, "retry_base_seconds": 0.2,
                                    **sections.pop("pipeline", {})}, **sections)


@contextlib.asynccontextmanager
async def gateway_with_headends(data_dir: Path, tdsps: dict[str, str], *, meters: int = 10,
                                join_window_scale: float = 1.0, storage_url: str | None = None,
                                device_key: str | None = None, profiles: dict[str, dict[str, Any]] | None = None,
                                before_start: Callable[[dict[str, QuickFleet], RealClock], None] | None = None,
                                pipeline: dict[str, Any] | None = None) -> AsyncIterator[GatewayRig]:
    """`tdsps`: TDSP profile name -> transport. Premises of every fleet are loaded into the gateway.
    `before_start` prepares the fleets before the gateway starts (and may send stored work at once)."""
    clock = RealClock(seed=5)
    prefix = f"test/gwr/{uuid.uuid4().hex[:8]}"
    fleets: dict[str, QuickFleet] = {}
    headends: dict[str, HeadEnd] = {}
    try:
        for tdsp, transport in tdsps.items():
            fleets[tdsp] = QuickFleet(meters, clock, esi_prefix=FLEET_PREFIX[tdsp])
            profile = load_profile(tdsp).with_transport(transport)
            headends[tdsp] = headend_for_profile(profile, fleets[tdsp], clock, topic_prefix=f"{prefix}/{tdsp}",
                                          join_window_scale=join_window_scale)
            await headends[tdsp].start()
        if before_start is not None:
            before_start(fleets, clock)
        config = adapter_routes_config(data_dir, {t: (tdsps[t], headends[t]) for t in tdsps}, prefix, device_key,
                                       profiles, pipeline=pipeline or {},
                                       **({"storage": {"url": storage_url}} if storage_url else {}))
        config.data_dir.mkdir(parents=True)
        store = await open_test_store(config)
        gclock = ManualClock()
        _cred, operator_token = await store.issue_credential(role=Role.OPERATOR, label="tests", now=gclock.now())
        app = create_app(config, store=store, clock=gclock, run_timers=False, routes=build_routes(config, store))
        server, task, port = await start_server(app)
        base_url = f"http://127.0.0.1:{port}"
        config.server.public_url = base_url
        try:
            async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
                gw = Gateway(base_url, client, store, gclock, config, operator_token)
                rig = GatewayRig(gw, store, fleets, headends, clock)
                lines = ["esi_id,meter_number,customer_email,rep,premise_class,se_version,enhanced_meter"]
                for tdsp, fleet in fleets.items():
                    for i in range(meters):
                        esi = fleet.esi_id(i)
                        rig.meters[esi] = f"M-{tdsp}-{i}"
                        lines.append(f"{esi},M-{tdsp}-{i},{CUSTOMER},Volt REP,residential,1.1,no")
                await gw.load_premises("\n".join(lines) + "\n")
                yield rig
        finally:
            await stop_server(server, task)
            await store.close()
    finally:
        for headend in headends.values():
            await headend.close()
