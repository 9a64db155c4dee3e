"""HAN provisioning through the REST API, end to end over real HTTP and real head-end sockets:
install code in at the gateway, the derived link key (only) through each TDSP's adapter and
emulated head-end to the simulated meter, device joined (or failed with the right reason) out,
status and history on GET /v1/premises/{esi}/devices/{eui64}."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet
from fastapi import FastAPI, Request

from ams_adapters.profiles import load_profile
from gateway.pipeline.webhooks import verify
from gateway.store.schema import han_devices, han_provisioning_ops
from simulators.addressing import eui64_str
from simulators.clock import RealClock
from tests.adapters.gateway_rig import FLEET_PREFIX, GatewayRig, gateway_with_headends, press_join_buttons
from tests.adapters.harness import TDSPS, QuickFleet
from tests.gateway.conftest import install_code, running_gateway, start_server, stop_server
from zigbee_se import parse_install_code


def _eui(dev: Any) -> str:
    return eui64_str(dev.eui64).replace(":", "").upper()


def _code(dev: Any) -> str:
    hexed: str = dev.install_code.hex().upper()
    return " ".join(hexed[i:i + 4] for i in range(0, len(hexed), 4))  # as a label prints it


async def _device(rig: GatewayRig, token: str, esi: str, eui: str) -> dict[str, Any]:
    r = await rig.gw.client.get(f"/v1/premises/{esi}/devices/{eui}", headers=rig.gw.auth(token))
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


async def _status(rig: GatewayRig, token: str, esi: str, eui: str, status: str) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        d = await _device(rig, token, esi, eui)
        return d if d["status"] == status else None
    found: dict[str, Any] = await rig.eventually(reached)
    return found


async def _operation_done(rig: GatewayRig, esi: str, op_id: int, state: str = "done") -> None:
    async def done() -> bool:
        r = await rig.gw.client.get(f"/v1/premises/{esi}/han", headers=rig.gw.op)
        ops = {o["id"]: o for o in r.json()["operations"]}
        return ops[op_id]["state"] == state
    await rig.eventually(done)


async def _initialize(rig: GatewayRig, esi: str, headers: dict[str, str]) -> None:
    r = await rig.gw.client.post(f"/v1/premises/{esi}/han/initialize", headers=headers)
    assert r.status_code == 202, r.text
    await _operation_done(rig, esi, r.json()["id"])


async def _technician(rig: GatewayRig, esi: str) -> str:
    r = await rig.gw.client.post("/v1/technicians", headers=rig.gw.op, json={"name": "Tex", "email": "t@x.test"})
    tech = r.json()["id"]
    r = await rig.gw.client.post(f"/v1/technicians/{tech}/assignments", headers=rig.gw.op, json={"esi_id": esi})
    assert r.status_code == 204, r.text
    r = await rig.gw.client.post(f"/v1/technicians/{tech}/credentials", headers=rig.gw.op, json={})
    token: str = r.json()["token"]
    return token


async def test_provision_joined_through_each_tdsp(tmp_path: Path) -> None:
    transports = {t: load_profile(t).transport for t in TDSPS}
    assert set(transports.values()) == {"multispeak", "cim", "binary"}
    async with gateway_with_headends(tmp_path / "d", transports, meters=2) as rig:
        rig.auto_join()
        esis = {t: rig.fleets[t].esi_id(0) for t in TDSPS}
        _party, token = await rig.gw.new_party("Acme", "123456789")
        await rig.customer(token, list(esis.values()), kind="in_home_device")
        for tdsp, esi in esis.items():
            # initialize and provision at once: the device's operation waits for the HAN's
            r = await rig.gw.client.post(f"/v1/premises/{esi}/han/initialize", headers=rig.gw.op)
            assert r.status_code == 202, r.text
            ihd = rig.fleets[tdsp].devices(esi)[0]
            r = await rig.gw.client.post(f"/v1/premises/{esi}/devices", headers=rig.gw.auth(token), json={
                "eui64": _eui(ihd), "device_type": "in_home_display", "install_code": _code(ihd),
                "join_window_days": 2})
            assert r.status_code == 201, r.text
            assert r.json()["status"] == "provision_requested" and r.json()["join_window_ends_at"]
        for tdsp, esi in esis.items():
            ihd = rig.fleets[tdsp].devices(esi)[0]
            joined = await _status(rig, token, esi, _eui(ihd), "joined")
            states = [h["state"] for h in joined["history"]]
            assert states == ["provision_requested", "requested", "find_pending", "joined"], (tdsp, states)
            assert joined["last_reason"] is None
            assert rig.fleets[tdsp].meter(esi).device_status(ihd.eui64) is not None  # on the meter's HAN
            assert ihd.eui64 in rig.fleets[tdsp].meter(esi).devices  # joined at the simulated meter


async def test_failures_name_their_reason_and_keys_stay_encrypted(tmp_path: Path) -> None:
    # one day of join window on the wire lasts 0.6 s at these emulated head-ends
    async with gateway_with_headends(tmp_path / "d", {"tnmp": "binary", "oncor": "multispeak"}, meters=3,
                                     join_window_scale=0.6 / 86400) as rig:
        rig.auto_join()
        fleet = rig.fleets["tnmp"]
        esi, full_esi = fleet.esi_id(0), fleet.esi_id(1)
        ihd, pct = fleet.devices(esi)
        _a, token = await rig.gw.new_party("Acme", "123456789")
        await rig.customer(token, [esi, full_esi], kind="in_home_device")
        tech = await _technician(rig, esi)
        await _initialize(rig, esi, rig.gw.auth(tech))  # the assigned technician may

        # a bad CRC is refused at entry, naming the expected CRC; nothing is stored or sent
        bad = bytearray(ihd.install_code)
        bad[-1] ^= 0xFF
        r = await rig.gw.client.post(f"/v1/premises/{esi}/devices", headers=rig.gw.auth(token), json={
            "eui64": _eui(ihd), "device_type": "in_home_display", "install_code": bad.hex()})
        assert r.status_code == 422, r.text
        (error,) = r.json()["errors"]
        expected = ihd.install_code[-2:].hex().upper()
        assert error["field"] == "install_code" and error["code"] == "install_code_crc_mismatch"
        assert f"expected {expected}" in error["message"] and error["value"] == bad.hex()
        nothing = await rig.gw.client.get(f"/v1/premises/{esi}/devices/{_eui(ihd)}", headers=rig.gw.op)
        assert nothing.status_code == 404

        # wrong code: the PCT's label was misread as another valid code (the IHD's)
        r = await rig.gw.client.post(f"/v1/premises/{esi}/devices", headers=rig.gw.auth(token), json={
            "eui64": _eui(pct), "device_type": "thermostat", "install_code": _code(ihd), "join_window_days": 1})
        assert r.status_code == 201, r.text
        failed = await _status(rig, token, esi, _eui(pct), "failed")
        assert failed["last_reason"] == "wrong_install_code"
        assert failed["history"][-1]["detail"] == "link_key_mismatch"

        # the corrected code: a failed device may be provisioned again, and joins
        r = await rig.gw.client.post(f"/v1/premises/{esi}/devices", headers=rig.gw.auth(token), json={
            "eui64": _eui(pct), "device_type": "thermostat", "install_code": _code(pct), "join_window_days": 1})
        assert r.status_code == 201, r.text
        await _status(rig, token, esi, _eui(pct), "joined")

        # nobody presses the IHD's button: the join window lapses
        rig.no_button.add(ihd.eui64)
        r = await rig.gw.client.post(f"/v1/premises/{esi}/devices", headers=rig.gw.auth(tech), json={
            "eui64": _eui(ihd), "device_type": "in_home_display", "install_code": _code(ihd),
            "join_window_days": 1})
        assert r.status_code == 201, r.text  # the assigned technician may provision too
        # The technician's device is not the party's: the party does not see it (issue 11), they do.
        lapsed = await _status(rig, tech, esi, _eui(ihd), "failed")
        assert lapsed["last_reason"] == "join_window_expired"

        # the link key is stored encrypted; neither it nor the install code is readable in the DB
        async with rig.store.engine.connect() as conn:
            stored = (await conn.execute(sa.select(han_devices).where(
                han_devices.c.esi_id == esi, han_devices.c.eui64 == _eui(pct)))).one()
        raw = " ".join(str(v) for v in stored)
        key = parse_install_code(pct.install_code.hex()).link_key
        for secret in (key.hex(), key.hex().upper(), pct.install_code.hex(), pct.install_code.hex().upper()):
            assert secret not in raw
        cipher = Fernet(rig.gw.config.security.device_key_secret.encode())
        assert cipher.decrypt(stored.link_key_encrypted.encode()) == key

        # device limit: the meter at full_esi already holds 5 devices provisioned outside the gateway
        meter = fleet.meter(full_esi)
        meter.initialize_han()
        for i in range(5):
            meter.provision_device((0x00AA000000000000 + i).to_bytes(8, "little"), link_key=bytes(16))
        other = fleet.devices(full_esi)[0]
        r = await rig.gw.client.post(f"/v1/premises/{full_esi}/devices", headers=rig.gw.auth(token), json={
            "eui64": _eui(other), "device_type": "in_home_display", "install_code": _code(other)})
        assert r.status_code == 201, r.text
        limited = await _status(rig, token, full_esi, _eui(other), "failed")
        assert limited["last_reason"] == "device_limit_reached"
        assert "at most 5 devices" in limited["history"][-1]["detail"]

        # delete one device, then the technician clears the HAN and decommissions it
        r = await rig.gw.client.delete(f"/v1/premises/{esi}/devices/{_eui(pct)}", headers=rig.gw.auth(token))
        assert r.status_code == 202 and r.json()["kind"] == "delete_device", r.text
        await _status(rig, token, esi, _eui(pct), "removed")
        assert pct.eui64 not in fleet.meter(esi).devices
        assert (await rig.gw.client.delete(f"/v1/premises/{esi}/devices/{_eui(pct)}",
                                           headers=rig.gw.auth(token))).status_code == 204
        r = await rig.gw.client.post(f"/v1/premises/{esi}/han/clear", headers=rig.gw.auth(tech))
        assert r.status_code == 202, r.text
        await _operation_done(rig, esi, r.json()["id"])
        assert (await _device(rig, tech, esi, _eui(ihd)))["status"] == "removed"  # the technician's device
        r = await rig.gw.client.post(f"/v1/premises/{esi}/han/decommission", headers=rig.gw.op)
        await _operation_done(rig, esi, r.json()["id"])
        events = (await rig.gw.client.get(f"/v1/premises/{esi}/han", headers=rig.gw.op)).json()["events"]
        assert [e["state"] for e in events][-2:] == ["decommission_han_requested", "decommission_han_done"]


async def test_who_may_provision_and_manage_the_han(tmp_path: Path) -> None:
    async with gateway_with_headends(tmp_path / "d", {"tnmp": "binary"}, meters=3) as rig:
        fleet = rig.fleets["tnmp"]
        esi, services_esi = fleet.esi_id(0), fleet.esi_id(1)
        ihd = fleet.devices(esi)[0]
        body = {"eui64": _eui(ihd), "device_type": "in_home_display", "install_code": _code(ihd)}
        _a, token_a = await rig.gw.new_party("Acme", "123456789")
        _b, token_b = await rig.gw.new_party("Bravo", "987654321")
        await rig.customer(token_a, [esi], kind="in_home_device")
        await rig.customer(token_b, [services_esi], scopes=["text"])
        # no agreement at this premise: it is not even visible
        r = await rig.gw.client.post(f"/v1/premises/{esi}/devices", headers=rig.gw.auth(token_b), json=body)
        assert r.status_code == 404, r.text
        # an agreement, but for in-home device services, not an in-home device
        r = await rig.gw.client.post(f"/v1/premises/{services_esi}/devices", headers=rig.gw.auth(token_b),
                                     json=body)
        assert r.status_code == 403 and r.json()["code"] == "wrong_agreement_kind", r.text
        # a third party may not reset a premise's HAN, even with the right agreement
        r = await rig.gw.client.post(f"/v1/premises/{esi}/han/clear", headers=rig.gw.auth(token_a))
        assert r.status_code == 403 and r.json()["code"] == "operator_or_technician_only", r.text
        # a technician not assigned here sees nothing
        tech_elsewhere = await _technician(rig, services_esi)
        r = await rig.gw.client.post(f"/v1/premises/{esi}/devices", headers=rig.gw.auth(tech_elsewhere), json=body)
        assert r.status_code == 404, r.text
        # a QR code of another device is refused
        r = await rig.gw.client.post(f"/v1/premises/{esi}/devices", headers=rig.gw.auth(token_a), json={
            **body, "install_code": f"Z:001BC50000000099$I:{ihd.install_code.hex().upper()}"})
        assert r.status_code == 422 and r.json()["errors"][0]["code"] == "install_code_other_device", r.text
        r = await rig.gw.client.post(f"/v1/premises/{esi}/devices", headers=rig.gw.auth(token_a),
                                     json={**body, "join_window_days": 31})
        assert r.status_code == 422 and r.json()["errors"][0]["field"].endswith("join_window_days"), r.text


async def test_an_operation_waits_for_a_route_and_provisioning_needs_a_key(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "nokey", security={}) as gw:
        await gw.load_premises()
        r = await gw.client.post("/v1/premises/10443720000000001/devices", headers=gw.op, json={
            "eui64": "001BC50000000001", "device_type": "in_home_display",
            "install_code": "83FED3407A939723A5C639B26916D505C3B5"})
        assert r.status_code == 503 and r.json()["code"] == "device_key_missing", r.text
        assert "device_key_secret" in r.json()["detail"]
    async with gateway_with_headends(tmp_path / "d", {"tnmp": "binary"}, meters=1) as rig:
        # AEP Texas North has no [routes.tdsp.aep_north]: the operation is kept, queued, retried
        aep = "10204040000000006"
        r = await rig.gw.client.post("/v1/premises", headers=rig.gw.op, json={"esi_id": aep, "meter_number": "M"})
        assert r.status_code == 201, r.text
        r = await rig.gw.client.post(f"/v1/premises/{aep}/han/initialize", headers=rig.gw.op)
        op_id = r.json()["id"]

        async def retried() -> bool:
            async with rig.store.engine.connect() as conn:
                row = (await conn.execute(sa.select(han_provisioning_ops).where(
                    han_provisioning_ops.c.id == op_id))).one()
            return row.state == "queued" and row.attempts >= 1 and row.reason == "no route reaches this premise"
        await rig.eventually(retried)
        # a device provisioned and deleted before anything was sent: the provisioning is withdrawn
        r = await rig.gw.client.post(f"/v1/premises/{aep}/devices", headers=rig.gw.op, json={
            "eui64": "001BC50000000042", "device_type": "thermostat", "install_code": install_code(42)})
        assert r.status_code == 201, r.text
        r = await rig.gw.client.delete(f"/v1/premises/{aep}/devices/001BC50000000042", headers=rig.gw.op)
        assert r.status_code == 202, r.text
        ops = (await rig.gw.client.get(f"/v1/premises/{aep}/han", headers=rig.gw.op)).json()["operations"]
        assert [(o["kind"], o["state"]) for o in ops] == [
            ("delete_device", "queued"), ("provision_device", "failed"), ("initialize_han", "queued")]
        assert ops[1]["reason"].startswith("withdrawn")


async def test_provisioning_rides_out_a_head_end_outage_and_fires_webhooks(tmp_path: Path) -> None:
    got: list[tuple[dict[str, str], str]] = []
    hook = FastAPI()

    @hook.post("/hook")
    async def receive(request: Request) -> dict[str, str]:
        got.append(({k.lower(): v for k, v in request.headers.items()}, (await request.body()).decode()))
        return {}

    server, task, port = await start_server(hook)
    try:
        async with gateway_with_headends(tmp_path / "d", {"tnmp": "binary"}, meters=1) as rig:
            rig.auto_join()
            fleet = rig.fleets["tnmp"]
            esi = fleet.esi_id(0)
            fleet.meter(esi).initialize_han()
            ihd = fleet.devices(esi)[0]
            _a, token = await rig.gw.new_party("Acme", "123456789")
            await rig.customer(token, [esi], kind="in_home_device")
            w = await rig.gw.client.post("/v1/webhooks", headers=rig.gw.auth(token),
                                         json={"url": f"http://127.0.0.1:{port}/hook"})
            secret = w.json()["secret"]
            outage = asyncio.create_task(rig.headends["tnmp"].down_for(1.5))  # the head-end goes away
            await asyncio.sleep(0.1)
            r = await rig.gw.client.post(f"/v1/premises/{esi}/devices", headers=rig.gw.auth(token), json={
                "eui64": _eui(ihd), "device_type": "in_home_display", "install_code": _code(ihd)})
            assert r.status_code == 201, r.text
            await asyncio.sleep(0.5)
            (op,) = (await rig.gw.client.get(f"/v1/premises/{esi}/han", headers=rig.gw.op)).json()["operations"]
            assert op["state"] == "queued" and op["reason"], op  # kept and retried, not lost
            await outage
            await _status(rig, token, esi, _eui(ihd), "joined")  # stored, retried, carried out

            async def hooked() -> bool:
                return any('"joined"' in b for _, b in got)
            await rig.eventually(hooked)
    finally:
        await stop_server(server, task)
    assert all(verify(secret, h, b) for h, b in got)
    events = [json.loads(b) for _, b in got]
    assert {e["type"] for e in events} == {"device.provisioning"}
    assert [e["state"] for e in events] == ["provision_requested", "requested", "find_pending", "joined"]
    assert all(e["eui64"] == _eui(ihd) and e["esi_id"] == esi for e in events)


async def test_a_stored_operation_survives_a_restart(tmp_path: Path, migrated_pg_url: str) -> None:
    """PostgreSQL. A gateway accepts the provisioning and stops before seeing its end; the next
    gateway on the same database (with the TDSP's adapter) sends it again: the device joins."""
    key = Fernet.generate_key().decode()
    esi = "10400510000000000"  # the first premise of the emulated TNMP fleet
    csv = ("esi_id,meter_number,customer_email,rep,premise_class,se_version,enhanced_meter\n"
           f"{esi},M-tnmp-0,pat@example.test,Volt REP,residential,1.1,no\n")
    ihd = QuickFleet(1, RealClock(), esi_prefix=FLEET_PREFIX["tnmp"]).devices(esi)[0]  # deterministic identities
    eui, code = _eui(ihd), _code(ihd)
    async with running_gateway(tmp_path / "first", storage_url=migrated_pg_url,
                               security={"device_key_secret": key}) as gw:
        await gw.load_premises(csv)
        r = await gw.client.post(f"/v1/premises/{esi}/devices", headers=gw.op, json={
            "eui64": eui, "device_type": "in_home_display", "install_code": code})
        assert r.status_code == 201, r.text
        await asyncio.sleep(0.3)  # no route: it is tried, kept and retried later
        # as if a route had taken it just before the gateway died, with no end seen yet
        async with gw.store.engine.begin() as conn:
            await conn.execute(han_provisioning_ops.update().values(state="submitted"))
    def ready_meter(fleets: dict[str, QuickFleet], clock: RealClock) -> None:
        # Before the gateway starts: it sends the stored operation as soon as it is up.
        fleets["tnmp"].meter(esi).initialize_han()
        press_join_buttons(fleets, clock, set())

    async with gateway_with_headends(tmp_path / "second", {"tnmp": "binary"}, meters=1, storage_url=migrated_pg_url,
                                     device_key=key, before_start=ready_meter) as rig:
        joined = await _status(rig, rig.gw.operator_token, esi, eui, "joined")
        states = [h["state"] for h in joined["history"]]
        assert states == ["provision_requested", "requested", "find_pending", "joined"], states


async def test_a_submitted_operation_with_no_result_ends_failed(tmp_path: Path) -> None:
    """A head-end that took the provisioning and never reported (or reported while the gateway
    was down) leaves no device pending: past the join window and the result grace, the device is
    failed with `join_window_expired`, and a clear that never got an answer fails `no_result_before_expiry`."""
    from datetime import timedelta

    from gateway.device_keys import LinkKeyCipher
    from gateway.pipeline.dispatcher import RouteSet
    from gateway.pipeline.provisioning import ProvisioningSender
    from gateway.store.provisioning import RESULT_GRACE

    key = Fernet.generate_key().decode()
    esi = "10400510000000000"
    csv = ("esi_id,meter_number,customer_email,rep,premise_class,se_version,enhanced_meter\n"
           f"{esi},M-tnmp-0,pat@example.test,Volt REP,residential,1.1,no\n")
    ihd = QuickFleet(1, RealClock(), esi_prefix=FLEET_PREFIX["tnmp"]).devices(esi)[0]
    eui = _eui(ihd)
    async with running_gateway(tmp_path / "gw", security={"device_key_secret": key}) as gw:
        await gw.load_premises(csv)
        r = await gw.client.post(f"/v1/premises/{esi}/devices", headers=gw.op, json={
            "eui64": eui, "device_type": "in_home_display", "install_code": _code(ihd), "join_window_days": 1})
        assert r.status_code == 201, r.text
        assert (await gw.client.post(f"/v1/premises/{esi}/han/clear", headers=gw.op)).status_code == 202
        async with gw.store.engine.begin() as conn:  # a route took both; nothing more was heard
            await conn.execute(han_provisioning_ops.update().values(state="submitted"))
        sender = ProvisioningSender(gw.store, RouteSet(), gw.config.pipeline, gw.clock, LinkKeyCipher(key))
        gw.clock.advance(timedelta(days=1))
        assert await sender.run_once() == 0  # the window just ended: the head-end may still report
        r = await gw.client.get(f"/v1/premises/{esi}/devices/{eui}", headers=gw.op)
        assert r.json()["status"] == "provision_requested", r.json()
        gw.clock.advance(RESULT_GRACE + timedelta(seconds=1))
        assert await sender.run_once() == 1  # the provisioning; the clear lives on (7 days)
        device = (await gw.client.get(f"/v1/premises/{esi}/devices/{eui}", headers=gw.op)).json()
        assert device["status"] == "failed" and device["last_reason"] == "join_window_expired", device
        assert "no join reported" in device["history"][-1]["detail"], device["history"]
        gw.clock.advance(timedelta(days=7))
        assert await sender.run_once() == 1
        async with gw.store.engine.connect() as conn:
            ops = (await conn.execute(sa.select(han_provisioning_ops.c.kind, han_provisioning_ops.c.state,
                                                han_provisioning_ops.c.reason))).all()
        assert sorted((k, s) for k, s, _ in ops) == [("clear_devices", "failed"), ("provision_device", "failed")]
        assert any(reason and reason.startswith("no_result_before_expiry") for _, _, reason in ops), ops
