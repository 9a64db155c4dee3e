"""Ask the meter what is on its HAN (issue 13), from outside: real HTTP to a real gateway whose routes
are the TDSP adapters, each talking to its emulated head-end over real sockets (MultiSpeak SOAP,
61968-9 on the real Mosquitto, the binary protocol over TCP). The emulators answer from the
simulated meters; the gateway shows the meter's list against its records and where they differ."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from simulators.addressing import eui64_str
from tests.adapters.gateway_rig import GatewayRig, gateway_with_headends
from tests.adapters.test_gateway_provisioning import _code, _eui, _initialize, _status, _technician

TRANSPORTS = {"oncor": "multispeak", "centerpoint": "cim", "tnmp": "binary"}


async def _inventory(rig: GatewayRig, esi: str, headers: dict[str, str], *, refresh: bool = True,
                     status: int = 200) -> dict[str, Any]:
    r = await rig.gw.client.get(f"/v1/premises/{esi}/han/devices", headers=headers,
                                params={"refresh": "true"} if refresh else None)
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_meter_inventory_and_differences_through_each_protocol(tmp_path: Path) -> None:
    async with gateway_with_headends(tmp_path / "d", TRANSPORTS, meters=2) as rig:
        rig.auto_join()
        esis = {t: rig.fleets[t].esi_id(0) for t in TRANSPORTS}
        _a, token_a = await rig.gw.new_party("Acme", "123456789")
        await rig.customer(token_a, list(esis.values()), kind="in_home_device")
        for tdsp, esi in esis.items():
            await _initialize(rig, esi, rig.gw.op)
            ihd = rig.fleets[tdsp].devices(esi)[0]
            r = await rig.gw.client.post(f"/v1/premises/{esi}/devices", headers=rig.gw.auth(token_a), json={
                "eui64": _eui(ihd), "device_type": "in_home_display", "install_code": _code(ihd)})
            assert r.status_code == 201, r.text
        for tdsp, esi in esis.items():
            fleet = rig.fleets[tdsp]
            meter = fleet.meter(esi)
            ihd, pct = fleet.devices(esi)
            await _status(rig, token_a, esi, _eui(ihd), "joined")

            # Records and meter agree: the meter's list, no difference.
            body = await _inventory(rig, esi, rig.gw.auth(token_a))
            assert (body["refreshed"], body["route"], body["others"]) == (True, tdsp, 0), tdsp
            assert body["meter_id"] == eui64_str(meter.eui64)  # the ESI's own identity
            [seen] = body["meter"]
            assert (seen["eui64"], seen["join_state"], seen["device_type"], seen["se_version"]) == (
                _eui(ihd), "joined", "in_home_display", ihd.profile.se_version), tdsp
            assert seen["last_seen"] is not None and seen["lqi"] is None  # the simulated meter has no radio model
            assert [d["eui64"] for d in body["records"]] == [_eui(ihd)]
            assert body["differences"] == []

            # A device put on the meter outside the gateway (the utility's own portal): the operator
            # sees it as not provisioned; the party sees only its own device and a count of others.
            meter.provision_device(pct.eui64, pct.install_code)
            meter.join(pct)
            await rig.eventually(lambda m=meter, p=pct: _joined(m, p))
            op = await _inventory(rig, esi, rig.gw.op)
            assert {d["eui64"]: d["join_state"] for d in op["meter"]} == {_eui(ihd): "joined", _eui(pct): "joined"}
            assert op["differences"] == [{"eui64": _eui(pct), "kind": "not_provisioned", "ours": None,
                                          "meter": "joined", "detail": op["differences"][0]["detail"]}]
            assert op["others"] == 0
            mine = await _inventory(rig, esi, rig.gw.auth(token_a))
            assert [d["eui64"] for d in mine["meter"]] == [_eui(ihd)]
            assert (mine["differences"], mine["others"]) == ([], 1)
            assert _eui(pct) not in str(mine)

            # A meter swap (the HAN decommissioned at the meter): what we think joined is unknown to it.
            meter.decommission_han()
            swapped = await _inventory(rig, esi, rig.gw.auth(token_a))
            assert swapped["meter"] == [] and swapped["others"] == 0
            assert [(d["eui64"], d["kind"], d["ours"], d["meter"]) for d in swapped["differences"]] == [
                (_eui(ihd), "unknown_to_meter", "joined", None)]

            # Without refresh: the records only, the meter not asked.
            plain = await _inventory(rig, esi, rig.gw.auth(token_a), refresh=False)
            assert (plain["refreshed"], plain["meter"], plain["differences"]) == (False, None, [])
            assert [d["status"] for d in plain["records"]] == ["joined"]


async def _joined(meter: Any, device: Any) -> bool:
    return device.eui64 in meter.devices


async def test_who_may_refresh_errors_and_the_audit(tmp_path: Path) -> None:
    async with gateway_with_headends(tmp_path / "d", {"oncor": "multispeak"}, meters=3,
                                     profiles={"oncor": {"inventory_timeout_s": 0.5}}) as rig:
        fleet = rig.fleets["oncor"]
        esi, other_esi = fleet.esi_id(0), fleet.esi_id(1)
        fleet.install(esi)
        _a, token_a = await rig.gw.new_party("Acme", "123456789")
        _b, token_b = await rig.gw.new_party("Bravo", "987654321")
        await rig.customer(token_a, [esi], kind="in_home_device")
        tech = await _technician(rig, esi)

        # The assigned technician sees the meter's devices (both installed outside the gateway).
        body = await _inventory(rig, esi, rig.gw.auth(tech))
        assert {d["kind"] for d in body["differences"]} == {"not_provisioned"} and len(body["meter"]) == 2
        # A party without an agreement here, and a technician at another premise: as an unknown premise.
        for headers, target in ((rig.gw.auth(token_b), esi), (rig.gw.auth(tech), other_esi)):
            refused = await _inventory(rig, target, headers, status=404)
            assert refused["code"] in ("no_agreement", "not_assigned", "unknown_premise"), refused
        # The party with an agreement: nothing of its own on the meter, two others.
        mine = await _inventory(rig, esi, rig.gw.auth(token_a))
        assert (mine["meter"], mine["differences"], mine["others"]) == ([], [], 2)

        # A dark meter does not answer before the request's expiry: 504, named.
        fleet.meter(esi).set_reachable(False)
        dark = await _inventory(rig, esi, rig.gw.op, status=504)
        assert dark["code"] == "meter_did_not_answer" and "did not answer within 0.5 s" in dark["detail"]
        fleet.meter(esi).set_reachable(True)
        # The head-end down (its port refuses connections): 503 with Retry-After.
        down = asyncio.create_task(rig.headends["oncor"].down_for(3.0))
        await asyncio.sleep(0.2)
        r = await rig.gw.client.get(f"/v1/premises/{esi}/han/devices?refresh=true", headers=rig.gw.op)
        assert r.status_code == 503 and r.json()["code"] == "inventory_unavailable", r.text
        assert int(r.headers["Retry-After"]) >= 1
        await down

        # Every refresh that reached the route is in the audit log, with who asked (a refused caller
        # never gets that far: like any device listing, it is answered 404).
        r = await rig.gw.client.get("/v1/audit", headers=rig.gw.op, params={"esi_id": esi})
        refreshes = [e for e in r.json()["items"] if e["action"] == "refresh_han_inventory"]
        assert [(e["principal_role"], e["allowed"]) for e in refreshes].count(("operator", True)) == 2
        assert ("field_technician", True) in [(e["principal_role"], e["allowed"]) for e in refreshes]
        assert ("third_party", True) in [(e["principal_role"], e["allowed"]) for e in refreshes]
