"""An on-demand read over REST through the local radio (issue 16): a gateway configured with
`[routes.radio]` drives real bellows over TCP to the EZSP emulator; the simulated meter is a
Metering server node on the HAN (simulators/metering_node.py). The read the API answers is the
meter's register — the number the simulated and head-end routes give for the same meter."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from ams_adapters.contract import ProvisioningKind, ProvisioningRequest, SubmitOutcome
from ams_adapters.radio.route import RadioRoute
from gateway.app import create_app
from gateway.cli.serve import build_routes
from gateway.clock import ManualClock
from gateway.domain.model import Role
from gateway.store.store import open_store
from simulators.clock import VirtualClock
from simulators.meter import SimMeter
from simulators.metering_node import MeteringNode
from simulators.ncp import NcpEmulator, load_profile
from tests.gateway.conftest import ONCOR, gateway_config, stop_server
from tests.pipeline.test_radio_route_e2e import CUSTOMER, eventually, start_server
from zigbee_se import parse_install_code

METER_EUI = "00:0d:6f:00:0a:90:69:e8"
CODE = "83FED3407A939723A5C639B26916D505C3B5"


async def test_an_on_demand_read_through_the_radio(tmp_path: Path) -> None:
    emulator = NcpEmulator(load_profile("emberznet-7.4-mg24"))
    host, port = await emulator.serve_tcp()
    config = gateway_config(tmp_path / "data", pipeline={"poll_interval_seconds": 0.05}, routes={
        "radio": {"device": f"socket://{host}:{port}", "esi_ids": [ONCOR]}})
    config.data_dir.mkdir(parents=True)
    store = await open_store(config.storage_url)
    server = task = None
    try:
        clock = ManualClock()
        _cred, operator_token = await store.issue_credential(role=Role.OPERATOR, label="tests", now=clock.now())
        await store.upsert_premise({
            "esi_id": ONCOR, "tdsp": "oncor", "meter_number": "MTR-1", "customer_email": CUSTOMER, "rep": None,
            "premise_class": "residential", "se_version": "1.1", "enhanced_meter": False}, clock.now())
        routes = build_routes(config, store)
        radio = routes.for_premise(ONCOR)
        assert isinstance(radio, RadioRoute)
        app = create_app(config, store=store, clock=clock, run_timers=False, routes=routes)
        server, task, http_port = await start_server(app)  # the dispatcher starts the radio

        meter = SimMeter(ONCOR, VirtualClock(start=time.time(), seed=9))
        emulator.pair(MeteringNode(meter, METER_EUI, CODE))  # joins once the coordinator permits it
        accepted = await radio.provision(ProvisioningRequest(
            "prov-meter", ONCOR, ProvisioningKind.PROVISION_DEVICE, METER_EUI, parse_install_code(CODE).link_key,
            86400))
        assert accepted.outcome is SubmitOutcome.ACCEPTED

        async def meter_on_han() -> bool:
            return bool(radio.radio.metering_devices())
        await eventually(meter_on_han)

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=20) as client:
            op = {"Authorization": f"Bearer {operator_token}"}
            r = await client.post(f"/v1/premises/{ONCOR}/meter-reads", headers=op)
            assert r.status_code == 202, r.text
            read_id = r.json()["id"]

            async def done() -> dict[str, object] | None:
                body = (await client.get(f"/v1/meter-reads/{read_id}", headers=op)).json()
                return body if body["status"] != "pending" else None
            body = await eventually(done)
        assert body["status"] == "completed", body
        read = body["read"]
        assert isinstance(read, dict)
        assert read["delivered_wh"] == meter.register_read().delivered_wh > 0
        assert read["demand_w"] == int(meter.demand_w()) and read["received_wh"] is None
    finally:
        if server is not None and task is not None:
            await stop_server(server, task)
        await store.close()
        await emulator.close()
