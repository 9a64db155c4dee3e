"""The TDSP adapters as the pipeline's routes, over real HTTP: `[routes] kind = "adapters"` with
three TDSPs on three transports (MultiSpeak/SOAP, IEC 61968-9 over MQTT, binary/TCP). One text
request to premises of the three TDSPs is delivered through each head-end and the devices'
confirmations come back to GET /v1/han-requests/{id}. Config errors name field, value and limit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ams_adapters.contract import ContractError
from gateway.cli.serve import build_routes
from gateway.config import ConfigError, parse_config
from gateway.pipeline.adapter_routes import build_adapter_routes
from tests.adapters.gateway_rig import gateway_with_headends

THREE = {"oncor": "multispeak", "centerpoint": "cim", "tnmp": "binary"}


async def test_text_to_three_tdsps_is_delivered_and_confirmed(tmp_path: Path) -> None:
    async with gateway_with_headends(tmp_path / "d", THREE, meters=3) as rig:
        esis = [fleet.esi_id(0) for fleet in rig.fleets.values()]
        for fleet in rig.fleets.values():
            fleet.install(fleet.esi_id(0))  # the technician's visit: devices joined
        _party, token = await rig.gw.new_party("Acme", "123456789")
        await rig.customer(token, esis, scopes=["text"])
        r = await rig.gw.client.post("/v1/han-requests", headers=rig.gw.auth(token), json={
            "kind": "text", "esi_ids": esis, "text": "Peak 2-6pm", "confirmation_required": True,
            "duration_minutes": 60})
        assert r.status_code == 202, r.text
        rid = r.json()["id"]
        assert r.json()["targeted"] == 3

        async def deliveries() -> list[dict[str, Any]]:
            got = await rig.gw.client.get(f"/v1/han-requests/{rid}/deliveries", headers=rig.gw.auth(token))
            assert got.status_code == 200, got.text
            items: list[dict[str, Any]] = got.json()["items"]
            return items

        async def all_delivered() -> bool:
            items = await deliveries()
            return len(items) == 3 and all(i["state"] == "delivered" for i in items)
        await rig.eventually(all_delivered)
        # Each head-end carried its own premise's item, once.
        for tdsp, fleet in rig.fleets.items():
            core = rig.headends[tdsp].core
            assert sum(core.meter_deliveries.values()) == 1, (tdsp, core.meter_deliveries)
            ihd = fleet.devices(fleet.esi_id(0))[0]
            assert ihd.messaging is not None and ihd.messaging.displayed_text == "Peak 2-6pm"
            assert ihd.confirm_message()  # the customer presses "OK" on the display

        async def all_confirmed() -> bool:
            items = await deliveries()
            return all(any(d["state"] == "confirmed" for d in i["devices"]) for i in items)
        await rig.eventually(all_confirmed)
        summary = (await rig.gw.client.get(f"/v1/han-requests/{rid}", headers=rig.gw.auth(token))).json()
        assert summary["premises_by_state"] == {"delivered": 3}


def test_routes_map_tdsp_prefixes_and_leave_the_rest_unrouted() -> None:
    config = parse_config({"routes": {"kind": "adapters", "tdsp": {
        "oncor": {"url": "http://127.0.0.1:1"}, "tnmp": {"port": 9}}}}, env={})
    routes, adapters = build_adapter_routes(config.routes)
    assert set(adapters) == {"oncor", "tnmp"}
    assert routes.for_premise("10443720000000001") is adapters["oncor"]
    assert routes.for_premise("10176990000000003") is adapters["oncor"]  # Oncor's second prefix
    assert routes.for_premise("10400510000000007") is adapters["tnmp"]
    assert routes.for_premise("1008901000000000000004") is None  # CenterPoint: not configured
    assert routes.for_premise("10032780000000005") is None


@pytest.mark.parametrize(("routes", "key", "says"), [
    ({"kind": "adapters"}, "routes", "needs at least one of oncor"),
    ({"kind": "adapters", "tdsp": {"oncor": {}}}, "routes.tdsp.oncor", "url: '' is invalid"),
    ({"kind": "adapters", "tdsp": {"tnmp": {}}}, "routes.tdsp.tnmp", "port: 0 is invalid"),
    ({"kind": "adapters", "tdsp": {"aep_north": {"transport": "smoke", "port": 1}}}, "routes.tdsp.aep_north.transport",
     "transport: 'smoke' is invalid: one of multispeak, cim, binary"),
    ({"kind": "adapters", "tdsp": {"tnmp": {"port": 1, "profile": {"batch_size": 0}}}}, "routes.tdsp.tnmp",
     "profile.batch_size: 0 is invalid: a number in 1..10000"),
    ({"kind": "adapters", "tdsp": {"tnmp": {"port": 70000}}}, "routes.tdsp.tnmp.port", "65535"),
    ({"kind": "adapters", "tdsp": {"entergy": {}}}, "routes.tdsp.entergy", "unknown key"),
    ({"kind": "adapters", "tdsp": {"oncor": {"url": "https://h", "callback_cert_file": "c.pem"}}},
     "routes.tdsp.oncor", "set both"),
])
def test_bad_adapter_config_names_field_value_and_limit(routes: dict[str, Any], key: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"routes": routes}, env={})
    (problem,) = info.value.problems
    assert problem.key == key and says in problem.message, problem


def test_serve_refuses_a_bad_device_key_or_callback_certificate(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANGW_")}
    bad_key = tmp_path / "key.toml"
    bad_key.write_text(f'data_dir = "{tmp_path}/d"\n[security]\ndevice_key_secret = "not-a-key"\n')
    run = subprocess.run([sys.executable, "-m", "gateway", "serve", "-c", str(bad_key)], capture_output=True,
                         text=True, timeout=60, env=env, check=False)
    assert run.returncode == 2 and "security.device_key_secret" in run.stderr and "Fernet key" in run.stderr
    # a callback certificate that cannot be read stops the routes from being built
    config = parse_config({"routes": {"kind": "adapters", "tdsp": {"oncor": {
        "url": "http://127.0.0.1:1", "callback_cert_file": str(tmp_path / "none.pem"),
        "callback_key_file": str(tmp_path / "none.key")}}}}, env={})
    with pytest.raises(ContractError) as info:
        build_routes(config)
    assert info.value.field == "callback_cert_file" and "readable PEM" in info.value.limit


async def test_one_text_to_many_oncor_premises_goes_as_one_group_operation(tmp_path: Path) -> None:
    """`profile = { group_operations = true }` in [routes.tdsp.oncor]: the pipeline's batch of one
    request's deliveries reaches the MultiSpeak head-end as InitiateInHomeDisplayMessageToGroup."""
    async with gateway_with_headends(tmp_path / "d", {"oncor": "multispeak"}, meters=4,
                                     profiles={"oncor": {"group_operations": True}}) as rig:
        fleet = rig.fleets["oncor"]
        esis = [fleet.esi_id(i) for i in range(4)]
        for esi in esis:
            fleet.install(esi)
        _party, token = await rig.gw.new_party("Acme", "123456789")
        await rig.customer(token, esis, scopes=["text"])
        r = await rig.gw.client.post("/v1/han-requests", headers=rig.gw.auth(token), json={
            "kind": "text", "esi_ids": esis, "text": "Storm: power may go out", "duration_minutes": 60})
        assert r.status_code == 202, r.text
        rid = r.json()["id"]

        async def delivered() -> bool:
            summary = (await rig.gw.client.get(f"/v1/han-requests/{rid}", headers=rig.gw.auth(token))).json()
            return summary["premises_by_state"] == {"delivered": 4}
        await rig.eventually(delivered)
        stats = rig.headends["oncor"].core.stats
        assert stats["group_requests"] >= 1 and stats["group_members"] == 4, dict(stats)
        for esi in esis:
            ihd = fleet.devices(esi)[0]
            assert ihd.messaging is not None and ihd.messaging.displayed_text == "Storm: power may go out"
