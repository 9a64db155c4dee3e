"""The local radio as a pipeline route: a gateway configured with `[routes.radio]` (built by
`hangw serve`'s build_routes) drives real bellows over TCP to the EZSP emulator; a third party's
text request over REST reaches the emulated display and its confirmation comes back."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from ams_adapters.contract import ProvisioningKind, ProvisioningRequest, SubmitOutcome
from ams_adapters.radio.route import RadioRoute
from gateway.app import create_app
from gateway.cli.serve import build_routes
from gateway.clock import ManualClock
from gateway.config import ConfigError, parse_config
from gateway.domain.model import Role
from gateway.pipeline.dispatcher import RouteSet
from gateway.store.store import open_store
from simulators.ncp import NcpEmulator, load_profile
from tests.gateway.conftest import ONCOR, ONCOR_2, Gateway, gateway_config, stop_server
from tests.radio.devices import display
from zigbee_se import parse_install_code

EUI = "00:0d:6f:00:0a:90:69:e7"
CODE = "83FED3407A939723A5C639B26916D505C3B5"
CUSTOMER = "alice@example.test"  # ONCOR's customer in tests/gateway/conftest.py PREMISES_CSV


async def eventually(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not met in {timeout} s: last {result!r}")
        await asyncio.sleep(0.1)


async def start_server(app: Any) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    """Like tests.gateway.conftest.start_server, with time for the app's startup to form the HAN
    (bellows waits 2 s for a network coordinator's reset, three times when forming)."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False,
                                           lifespan="on", ws="none", http="h11"))
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(60):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
    return server, task, server.servers[0].sockets[0].getsockname()[1]


def test_radio_section_is_validated_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as bad:
        parse_config({"routes": {"radio": {"device": "socket://nohost", "esi_ids": ["123"]}}}, env={})
    text = str(bad.value)
    assert "routes.radio.esi_ids" in text and "'123' is not an ESI ID" in text
    with pytest.raises(ConfigError, match="host and port"):
        parse_config({"routes": {"radio": {"device": "socket://nohost", "esi_ids": [ONCOR]}}}, env={})
    with pytest.raises(ConfigError, match="baudrate=1200"):
        parse_config({"routes": {"radio": {"device": "/dev/ttyUSB0", "baudrate": 1200, "esi_ids": [ONCOR]}}}, env={})
    # A technician's `hangw radio` settings in the environment are not config keys.
    config = parse_config({}, env={"HANGW_RADIO_DEVICE": "/dev/ttyUSB0", "HANGW_RADIO_ESI_ID": ONCOR,
                                   "HANGW_ROUTES__RADIO__DEVICE": "socket://127.0.0.1:9999",
                                   "HANGW_ROUTES__RADIO__ESI_IDS": f'["{ONCOR}"]'})
    assert config.routes.radio is not None and config.routes.radio.device == "socket://127.0.0.1:9999"
    assert config.routes.radio.esi_ids == [ONCOR] and config.routes.radio.flow is None


def test_exact_esi_ids_are_consulted_before_prefixes() -> None:
    radio, tdsp, default = object(), object(), object()
    routes = RouteSet(default, by_prefix={"1044372": tdsp}, by_esi={ONCOR: radio})  # type: ignore[dict-item, arg-type]
    assert routes.for_premise(ONCOR) is radio
    assert routes.for_premise(ONCOR_2) is tdsp
    assert routes.for_premise("1017699") is default
    assert len(routes.all()) == 3


async def test_text_over_rest_is_delivered_and_confirmed_through_the_radio(tmp_path: Path) -> None:
    emulator = NcpEmulator(load_profile("emberznet-7.4-mg24"))
    host, port = await emulator.serve_tcp()
    backup = tmp_path / "data" / "han-backup.json"
    config = gateway_config(tmp_path / "data", pipeline={"poll_interval_seconds": 0.05}, routes={
        "radio": {"device": f"socket://{host}:{port}", "esi_ids": [ONCOR], "backup_file": str(backup)}})
    config.data_dir.mkdir(parents=True)
    store = await open_store(config.storage_url)
    server = task = None
    try:
        clock = ManualClock()
        _cred, operator_token = await store.issue_credential(role=Role.OPERATOR, label="tests", now=clock.now())
        # The premise is imported before the gateway starts: the radio route checks it at startup.
        await store.upsert_premise({
            "esi_id": ONCOR, "tdsp": "oncor", "meter_number": "MTR-1", "customer_email": CUSTOMER, "rep": None,
            "premise_class": "residential", "se_version": "1.1", "enhanced_meter": False}, clock.now())
        routes = build_routes(config, store)
        radio = routes.for_premise(ONCOR)
        assert isinstance(radio, RadioRoute) and routes.for_premise(ONCOR_2) is None
        app = create_app(config, store=store, clock=clock, run_timers=False, routes=routes)
        server, task, http_port = await start_server(app)  # starts the dispatcher: forms the HAN
        assert emulator.ncp.nvram.formed and backup.exists()  # first formation writes the backup
        base_url = f"http://127.0.0.1:{http_port}"
        config.server.public_url = base_url

        # The contract's provisioning operation admits the display by its install code.
        device = display(EUI, CODE)
        link_key = parse_install_code(CODE).link_key
        accepted = await radio.provision(ProvisioningRequest(
            "prov-1", ONCOR, ProvisioningKind.PROVISION_DEVICE, EUI, link_key, 86400))
        assert accepted.outcome is SubmitOutcome.ACCEPTED
        loop = asyncio.get_running_loop()
        while emulator.ncp.stack.permit_until <= loop.time():
            await asyncio.sleep(0.02)
        emulator.join(device)

        async def joined() -> bool:
            return any(d.status.value == "joined" for d in (await store.list_devices(ONCOR)).items)
        await eventually(joined)

        async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
            gw = Gateway(base_url, client, store, clock, config, operator_token)
            # The gateway's device API lists what the radio recorded.
            listed = await client.get(f"/v1/premises/{ONCOR}/devices", headers=gw.op)
            assert listed.status_code == 200, listed.text
            assert [(d["eui64"], d["status"], d["device_type"]) for d in listed.json()["items"]] == [
                ("000D6F000A9069E7", "joined", "in_home_display")]
            _party, token = await gw.new_party("Acme", "123456789")
            await gw.active_agreement(token, ONCOR, "MTR-1", CUSTOMER)
            r = await client.post("/v1/han-requests", headers=gw.auth(token), json={
                "kind": "text", "esi_ids": [ONCOR], "text": "Peak at 5pm", "confirmation_required": True})
            assert r.status_code == 202, r.text
            rid = r.json()["id"]

            async def confirmed() -> bool:
                d = await client.get(f"/v1/han-requests/{rid}/deliveries", headers=gw.auth(token))
                assert d.status_code == 200, d.text
                return any(dev["state"] == "confirmed" for item in d.json()["items"] for dev in item["devices"])
            await eventually(confirmed)

            # The radio's text limit is the SE single-frame budget (no APS fragmentation): 58
            # UTF-8 bytes at SE 1.1. One byte over is refused before acceptance; at it, the text
            # goes out in one 73-byte frame.
            at_limit = "é" * 29
            r = await client.post("/v1/han-requests", headers=gw.auth(token), json={
                "kind": "text", "esi_ids": [ONCOR], "text": at_limit + "!"})
            assert r.status_code == 422, r.text
            (error,) = r.json()["errors"]
            assert (error["field"], error["code"], error["value"], error["limit"]) == ("text", "text_too_long", 59, 58)
            assert "for SE 1.1 meters on route radio (the SE single-frame budget)" in error["message"]
            r = await client.post("/v1/han-requests", headers=gw.auth(token), json={
                "kind": "text", "esi_ids": [ONCOR], "text": at_limit})
            assert r.status_code == 202, r.text

            async def sent() -> bool:
                d = await client.get(f"/v1/han-requests/{r.json()['id']}/deliveries", headers=gw.auth(token))
                return [item["state"] for item in d.json()["items"]] == ["delivered"]
            await eventually(sent)
        received = [device.frames.get_nowait()[1] for _ in range(device.frames.qsize())]
        texts = [f.fields["message"] for f in received if f.command == "display_message"]
        assert texts == ["Peak at 5pm", at_limit]  # each delivered once
    finally:
        if server is not None and task is not None:
            await stop_server(server, task)
        await store.close()
        await emulator.close()
