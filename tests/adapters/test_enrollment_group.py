"""Setting a device's utility enrollment group through the API (issue 13), from the outside: a real
gateway (`hangw serve`'s app) whose routes are the TDSP adapters, talking over real sockets to
emulated head-ends — TNMP's binary protocol (frames carried raw) and Oncor's MultiSpeak (semantic
calls only) — in front of simulated meters and devices that join with their install codes.

A third party provisions a thermostat and enrolls it in group 7; the thermostat's own Write
Attributes Response comes back through the head-end into the HAN request's deliveries, then the
thermostat takes a load-control event for group 7 and ignores one for group 3. Another party
cannot touch it (the same 404 as an unknown device), the operator can (and reads its request),
a device without a DRLC client refuses with its ZCL status, a firmware with a read-only group
writes the rest and names what it refused, and a MultiSpeak premise is refused at acceptance.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from simulators.addressing import eui64_str
from simulators.clock import RealClock
from tests.adapters.gateway_rig import GatewayRig, gateway_with_headends
from tests.adapters.harness import QuickFleet

GROUP = "enrollment-group"
HVAC = 0x0001  # the simulated thermostats' device class (HVAC compressor / furnace)


def _eui(device: Any) -> str:
    return eui64_str(device.eui64).replace(":", "").upper()


def _path(esi: str, eui: str) -> str:
    return f"/v1/premises/{esi}/devices/{eui}/{GROUP}"


async def _provision(rig: GatewayRig, token: str, esi: str, devices: list[Any]) -> None:
    """The party joins its customer's devices by their install codes (the meter's HAN first)."""
    r = await rig.gw.client.post(f"/v1/premises/{esi}/han/initialize", headers=rig.gw.op)
    assert r.status_code == 202, r.text
    for device in devices:
        r = await rig.gw.client.post(f"/v1/premises/{esi}/devices", headers=rig.gw.auth(token), json={
            "eui64": _eui(device), "device_type": device.profile.device_type,
            "install_code": device.install_code.hex().upper()})
        assert r.status_code == 201, r.text

    async def joined() -> bool:
        r = await rig.gw.client.get(f"/v1/premises/{esi}/devices", headers=rig.gw.auth(token))
        return sum(d["status"] == "joined" for d in r.json()["items"]) == len(devices)
    await rig.eventually(joined)


async def _ended(rig: GatewayRig, headers: dict[str, str], request_id: int) -> dict[str, Any]:
    """The write's one delivery once its device's answer (or silence) ended it."""
    async def done() -> dict[str, Any] | None:
        r = await rig.gw.client.get(f"/v1/han-requests/{request_id}/deliveries", headers=headers)
        assert r.status_code == 200, r.text
        [item] = r.json()["items"]
        return item if item["state"] not in ("queued", "submitted", "delivered") else None
    found: dict[str, Any] = await rig.eventually(done)
    return found


def _read_only_group(fleets: dict[str, QuickFleet], _clock: RealClock) -> None:
    """Premise 1's thermostat runs a firmware built with a fixed UtilityEnrollmentGroup."""
    pct = fleets["tnmp"].devices(fleets["tnmp"].esi_id(1))[1]
    pct.profile = dataclasses.replace(pct.profile, quirks=dataclasses.replace(
        pct.profile.quirks, read_only_attributes=(0x0000,)))


async def test_a_party_regroups_its_thermostat_and_the_thermostat_follows_its_new_group(tmp_path: Path) -> None:
    async with gateway_with_headends(tmp_path / "d", {"tnmp": "binary", "oncor": "multispeak"}, meters=2,
                                     before_start=_read_only_group) as rig:
        rig.auto_join()
        gw, fleet = rig.gw, rig.fleets["tnmp"]
        esi = fleet.esi_id(0)
        ihd, pct = fleet.devices(esi)  # a Silicon Labs display (no DRLC client) and thermostat
        assert pct.drlc is not None and pct.drlc.ueg == 0
        _a, acme = await gw.new_party("Acme", "123456789")
        _b, bolt = await gw.new_party("Bolt", "987654321")
        await rig.customer(acme, [esi], kind="in_home_device")  # Acme installs the devices...
        await rig.customer(acme, [esi], scopes=["load_control"])  # ...and runs a load-control program
        await rig.customer(bolt, [esi], scopes=["load_control"])  # Bolt runs one on the same premise
        await _provision(rig, acme, esi, [ihd, pct])

        # Another party's device answers exactly what an unknown one does; nothing is stored.
        for eui in (_eui(pct), "001BC5FFFFFFFFFF"):
            r = await gw.client.put(_path(esi, eui), headers=gw.auth(bolt), json={"utility_enrollment_group": 3})
            assert (r.status_code, r.json()["code"]) == (404, "unknown_device"), r.text
        # Limits are SE's, each refusal naming the field, the value and the limit.
        r = await gw.client.put(_path(esi, _eui(pct)), headers=gw.auth(acme), json={
            "utility_enrollment_group": 256, "start_randomization_minutes": 61})
        assert r.status_code == 422, r.text
        assert {(e["field"], e["value"]) for e in r.json()["errors"]} == {
            ("utility_enrollment_group", 256), ("start_randomization_minutes", 61)}

        # The owner writes group 7; a retry with the same key is the same request, not a second write.
        key = {"Idempotency-Key": "enroll-pct-7"}
        body = {"utility_enrollment_group": 7, "start_randomization_minutes": 5}
        r = await gw.client.put(_path(esi, _eui(pct)), headers={**gw.auth(acme), **key}, json=body)
        assert r.status_code == 202, r.text
        accepted = r.json()
        assert accepted["kind"] == "set_enrollment_group" and accepted["attributes"] == body
        again = await gw.client.put(_path(esi, _eui(pct)), headers={**gw.auth(acme), **key}, json=body)
        assert again.status_code == 202 and again.json() == accepted
        assert again.headers["Idempotent-Replayed"] == "true"

        item = await _ended(rig, gw.auth(acme), accepted["id"])
        assert item["state"] == "written" and item["reason"] is None, item
        assert item["command"] == "write_attributes", item  # the binary adapter encodes it, server->client
        [device] = item["devices"]
        assert (device["eui64"].replace(":", "").upper(), device["state"]) == (_eui(pct), "written")
        assert pct.drlc.ueg == 7 and pct.drlc.start_randomization_minutes == 5
        assert rig.headends["tnmp"].core.meter_deliveries[f"tnmp:hgw-{item['delivery_id']}"] == 1  # written once
        summary = (await gw.client.get(f"/v1/han-requests/{accepted['id']}", headers=gw.auth(acme))).json()
        assert summary["premises_by_state"] == {"written": 1} and summary["devices_by_state"] == {"written": 1}

        # The thermostat now takes group 7's events and ignores group 3's (SE: group 0 or its own).
        event_ids = {}
        for group in (3, 7):
            r = await gw.client.post("/v1/han-requests", headers=gw.auth(acme), json={
                "kind": "load_control", "esi_ids": [esi], "device_classes": HVAC, "utility_enrollment_group": group,
                "criticality": 3, "duration_minutes": 30})
            assert r.status_code == 202, r.text
            event_ids[group] = r.json()
        async def taken() -> bool:
            r = await gw.client.get(f"/v1/han-requests/{event_ids[7]['id']}/deliveries", headers=gw.auth(acme))
            return any(d["state"] == "received" for i in r.json()["items"] for d in i["history"] if d["eui64"])
        await rig.eventually(taken)
        assert pct.drlc.find(event_ids[7]["se_id"]) is not None
        assert pct.drlc.find(event_ids[3]["se_id"]) is None  # ignored: not its group
        r = await gw.client.get(f"/v1/han-requests/{event_ids[3]['id']}/deliveries", headers=gw.auth(acme))
        assert [i["devices"] for i in r.json()["items"]] == [[]]

        # A display has no DRLC client: it refuses the write with a Default Response.
        r = await gw.client.put(_path(esi, _eui(ihd)), headers=gw.auth(acme), json={"utility_enrollment_group": 7})
        assert r.status_code == 202, r.text
        item = await _ended(rig, gw.auth(acme), r.json()["id"])
        assert (item["state"], item["reason"]) == ("refused", "Write Attributes refused: 0xc3 UNSUPPORTED_CLUSTER")

        # The operator may re-group any device; its request is its own (a third party cannot read it).
        r = await gw.client.put(_path(esi, _eui(pct)), headers=gw.op, json={"utility_enrollment_group": 0})
        assert r.status_code == 202, r.text
        operator_request = r.json()["id"]
        item = await _ended(rig, gw.op, operator_request)
        assert item["state"] == "written" and pct.drlc.ueg == 0
        r = await gw.client.get(f"/v1/han-requests/{operator_request}", headers=gw.auth(acme))
        assert (r.status_code, r.json()["code"]) == (404, "unknown_han_request")
        r = await gw.client.get(f"/v1/han-requests/{accepted['id']}", headers=gw.op)  # the operator reads all
        assert r.status_code == 200 and r.json()["kind"] == "set_enrollment_group"

        # A firmware whose group is read-only writes the rest and names what it refused (0x88).
        other = fleet.esi_id(1)
        await rig.customer(acme, [other], kind="in_home_device")
        await rig.customer(acme, [other], scopes=["load_control"])
        fixed = fleet.devices(other)[1]
        await _provision(rig, acme, other, [fixed])
        r = await gw.client.put(_path(other, _eui(fixed)), headers=gw.auth(acme), json={
            "utility_enrollment_group": 9, "duration_randomization_minutes": 10})
        assert r.status_code == 202, r.text
        item = await _ended(rig, gw.auth(acme), r.json()["id"])
        assert item["state"] == "partly_written", item
        assert item["reason"] == "utility_enrollment_group (0x0000): 0x88 READ_ONLY"
        assert item["devices"][0]["detail"] == item["reason"]
        assert fixed.drlc.ueg == 0 and fixed.drlc.duration_randomization_minutes == 10

        # MultiSpeak carries no frame of ours to one device: refused at once, nothing stored.
        oncor = rig.fleets["oncor"].esi_id(0)
        r = await gw.client.put(_path(oncor, "001BC5FFFFFFFFFF"), headers=gw.op, json={"utility_enrollment_group": 7})
        assert r.status_code == 409, r.text
        problem = r.json()
        assert problem["code"] == "route_cannot_set_enrollment_group"
        assert "route 'oncor' over multispeak" in problem["detail"], problem
        assert problem["errors"][0]["field"] == "esi_id" and problem["errors"][0]["value"] == oncor
