"""A device's enrollment group set through the local radio route (issue 13): a gateway configured
with `[routes.radio]` drives real bellows over TCP to the EZSP emulator; a third party provisions a
simulated thermostat by its install code over REST, sets its group over REST, and the thermostat's
Write Attributes Response comes back through the coordinator into the request's deliveries."""

from __future__ import annotations

from pathlib import Path

import httpx

from gateway.app import create_app
from gateway.cli.serve import build_routes
from gateway.clock import ManualClock
from gateway.domain.model import Role
from gateway.store.store import open_store
from simulators.addressing import eui64_from_str
from simulators.clock import RealClock
from simulators.factory import make_device
from simulators.ncp import NcpEmulator, load_profile
from simulators.profiles import load_profiles
from tests.gateway.conftest import ONCOR, Gateway, gateway_config, stop_server
from tests.pipeline.test_radio_route_e2e import CUSTOMER, eventually, start_server

PCT = "00:0d:6f:00:0b:11:22:44"
PCT_API = PCT.replace(":", "").upper()
CODE = bytes.fromhex("83FED3407A939723A5C639B26916D505C3B5")


async def test_a_party_sets_its_thermostats_group_through_the_radio(tmp_path: Path) -> None:
    emulator = NcpEmulator(load_profile("emberznet-7.4-mg24"))
    host, port = await emulator.serve_tcp()
    pct = make_device(load_profiles()["silabs-pct"], eui64_from_str(PCT), CODE, RealClock())
    config = gateway_config(tmp_path / "data", pipeline={"poll_interval_seconds": 0.05}, routes={
        "radio": {"device": f"socket://{host}:{port}", "esi_ids": [ONCOR],
                  "backup_file": str(tmp_path / "data" / "han-backup.json")}})  # a device key: gateway_config's
    config.data_dir.mkdir(parents=True)
    store = await open_store(config.storage_url)
    server = task = None
    try:
        clock = ManualClock()
        _cred, operator_token = await store.issue_credential(role=Role.OPERATOR, label="tests", now=clock.now())
        await store.upsert_premise({
            "esi_id": ONCOR, "tdsp": "oncor", "meter_number": "MTR-1", "customer_email": CUSTOMER, "rep": None,
            "premise_class": "residential", "se_version": "1.2", "enhanced_meter": False}, clock.now())
        app = create_app(config, store=store, clock=clock, run_timers=False, routes=build_routes(config, store))
        server, task, http_port = await start_server(app)
        base_url = f"http://127.0.0.1:{http_port}"
        config.server.public_url = base_url
        async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
            gw = Gateway(base_url, client, store, clock, config, operator_token)
            _party, token = await gw.new_party("Acme", "123456789")
            await gw.active_agreement(token, ONCOR, "MTR-1", CUSTOMER, kind="in_home_device")
            await gw.active_agreement(token, ONCOR, "MTR-1", CUSTOMER, scopes=["load_control"])
            emulator.pair(pct)  # the customer puts the thermostat in pairing mode
            r = await client.post(f"/v1/premises/{ONCOR}/devices", headers=gw.auth(token), json={
                "eui64": PCT_API, "device_type": "thermostat", "install_code": CODE.hex()})
            assert r.status_code == 201, r.text

            async def joined() -> bool:
                d = await client.get(f"/v1/premises/{ONCOR}/devices/{PCT_API}", headers=gw.auth(token))
                return bool(d.json()["status"] == "joined")
            await eventually(joined)

            r = await client.put(f"/v1/premises/{ONCOR}/devices/{PCT_API}/enrollment-group", headers=gw.auth(token),
                                 json={"utility_enrollment_group": 42, "duration_randomization_minutes": 15})
            assert r.status_code == 202, r.text
            request_id = r.json()["id"]

            async def answered() -> dict[str, object] | None:
                d = await client.get(f"/v1/han-requests/{request_id}/deliveries", headers=gw.auth(token))
                [item] = d.json()["items"]
                return item if item["state"] == "written" else None
            item = await eventually(answered)
            assert item["se_version"] == "1.2"
            assert [(d["eui64"], d["state"]) for d in item["devices"]] == [(PCT, "written")]  # type: ignore[index]
            assert pct.drlc is not None and (pct.drlc.ueg, pct.drlc.duration_randomization_minutes) == (42, 15)
    finally:
        if server is not None and task is not None:
            await stop_server(server, task)
        await store.close()
        await emulator.close()
