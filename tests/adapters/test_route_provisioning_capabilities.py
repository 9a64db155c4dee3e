"""A route declares the HAN operations it can carry (`RouteCapabilities.provisioning`); the gateway
refuses any other at acceptance, over HTTP, with the problem `route_cannot_provision` naming the
premise's route and the operation, and stores nothing for it. Before, the simulated route took a
device and left it `provision_requested` for its whole join window ("route error: … not supported").

Three gateways: the simulated route (no provisioning at all), emulated head-ends that carry every
operation, and a head-end whose profile declares only some."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ams_adapters.profiles import HeadEndProfileError, load_profile
from simulators.addressing import eui64_str
from tests.adapters.gateway_rig import gateway_with_headends
from tests.gateway.conftest import install_code
from tests.pipeline.conftest import CUSTOMER, running_stack

EUI = "001BC5000000AA01"
PREMISE_OPERATIONS = ("initialize", "clear", "decommission")


def _device(n: int = 1) -> dict[str, Any]:
    return {"eui64": f"001BC5000000AA{n:02X}", "device_type": "in_home_display", "install_code": install_code(n)}


def _refused(r: Any, route: str, operation: str, esi: str) -> None:
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["code"] == "route_cannot_provision"
    assert f"route {route!r}" in body["detail"] and operation in body["detail"] and esi in body["detail"]
    [error] = body["errors"]
    assert error["field"] == "esi_id" and error["code"] == "route_cannot_provision"


async def test_the_simulated_route_refuses_every_provisioning_operation_and_stores_nothing(tmp_path: Path) -> None:
    # CenterPoint premises have no route in this stack (the others: the simulated route).
    async with running_stack(tmp_path / "d", no_route_prefix="1008901") as s:
        gw = s.gw
        _p, token = await gw.new_party("Acme", "123456789")
        esi = s.premises[0].esi_id
        # An in-home device agreement: the party may provision devices there.
        r = await gw.invite(token, esi_ids=[(esi, s.premises[0].meter_number)], email=CUSTOMER, kind="in_home_device")
        assert r.status_code == 201, r.text
        assert (await gw.consent(CUSTOMER)).status_code == 200
        for who in (gw.op, gw.auth(token)):
            r = await gw.client.post(f"/v1/premises/{esi}/devices", headers=who, json=_device())
            _refused(r, "simulated", "provision_device", esi)
        r = await gw.client.delete(f"/v1/premises/{esi}/devices/{EUI}", headers=gw.op)
        _refused(r, "simulated", "delete_device", esi)
        for op, kind in zip(PREMISE_OPERATIONS, ("initialize_han", "clear_devices", "decommission_han"), strict=True):
            r = await gw.client.post(f"/v1/premises/{esi}/han/{op}", headers=gw.op)
            _refused(r, "simulated", kind, esi)

        # Nothing stored: no device, no operation, no event.
        r = await gw.client.get(f"/v1/premises/{esi}/devices/{EUI}", headers=gw.op)
        assert r.status_code == 404, r.text
        r = await gw.client.get(f"/v1/premises/{esi}/devices", headers=gw.op)
        assert r.status_code == 200 and r.json()["items"] == [], r.text
        r = await gw.client.get(f"/v1/premises/{esi}/han", headers=gw.op)
        assert r.json() == {"operations": [], "events": []}, r.text

        # Authorization comes first: a party without the customer's consent learns nothing of the route.
        _q, stranger = await gw.new_party("Bolt", "987654321")
        r = await gw.client.post(f"/v1/premises/{esi}/devices", headers=gw.auth(stranger), json=_device(2))
        assert r.status_code in (403, 404) and r.json()["code"] != "route_cannot_provision", r.text

        # A premise no route reaches yet is not refused: its operation waits for a route.
        dark = s.premises[2].esi_id
        assert dark.startswith("1008901")
        r = await gw.client.post(f"/v1/premises/{dark}/han/initialize", headers=gw.op)
        assert r.status_code == 202, r.text


async def test_an_operation_stored_before_its_route_could_not_do_it_fails_at_once(tmp_path: Path) -> None:
    """Accepted while no route reached the premise; the gateway restarts with the simulated route
    there: the operation fails now, naming why, instead of waiting for its expiry."""
    storage = {"url": f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"}
    async with running_stack(tmp_path / "before", no_route_prefix="1008901", storage=storage) as s:
        esi = s.premises[2].esi_id
        r = await s.gw.client.post(f"/v1/premises/{esi}/han/initialize", headers=s.gw.op)
        assert r.status_code == 202, r.text
        op_id = r.json()["id"]
    async with running_stack(tmp_path / "after", storage=storage) as s:
        async def failed() -> dict[str, Any] | None:
            r = await s.gw.client.get(f"/v1/premises/{esi}/han", headers=s.gw.op)
            [op] = [o for o in r.json()["operations"] if o["id"] == op_id]
            return op if op["state"] == "failed" else None
        op = await s.eventually(failed)
        assert op["reason"].startswith("route_cannot_provision: route 'simulated'"), op


async def test_a_head_end_route_takes_every_operation(tmp_path: Path) -> None:
    async with gateway_with_headends(tmp_path / "d", {"tnmp": "binary"}, meters=2) as rig:
        rig.auto_join()
        fleet = rig.fleets["tnmp"]
        esi = fleet.esi_id(0)
        _party, token = await rig.gw.new_party("Acme", "123456789")
        await rig.customer(token, [esi], kind="in_home_device")
        r = await rig.gw.client.post(f"/v1/premises/{esi}/han/initialize", headers=rig.gw.op)
        assert r.status_code == 202, r.text
        ihd = fleet.devices(esi)[0]
        eui = eui64_str(ihd.eui64).replace(":", "").upper()
        code = ihd.install_code.hex().upper()
        r = await rig.gw.client.post(f"/v1/premises/{esi}/devices", headers=rig.gw.auth(token), json={
            "eui64": eui, "device_type": "in_home_display", "install_code": code})
        assert r.status_code == 201, r.text

        async def joined() -> bool:
            d = await rig.gw.client.get(f"/v1/premises/{esi}/devices/{eui}", headers=rig.gw.auth(token))
            return bool(d.json()["status"] == "joined")
        await rig.eventually(joined)
        r = await rig.gw.client.delete(f"/v1/premises/{esi}/devices/{eui}", headers=rig.gw.auth(token))
        assert r.status_code == 202, r.text
        for op in ("clear", "decommission"):
            r = await rig.gw.client.post(f"/v1/premises/{esi}/han/{op}", headers=rig.gw.op)
            assert r.status_code == 202, r.text


async def test_a_head_end_declaring_some_operations_refuses_the_others(tmp_path: Path) -> None:
    # This head-end's integration initializes HANs and provisions devices, nothing more.
    only = {"tnmp": {"provisioning": ["initialize_han", "provision_device"]}}
    async with gateway_with_headends(tmp_path / "d", {"tnmp": "binary"}, meters=2, profiles=only) as rig:
        esi = rig.fleets["tnmp"].esi_id(0)
        r = await rig.gw.client.post(f"/v1/premises/{esi}/han/initialize", headers=rig.gw.op)
        assert r.status_code == 202, r.text
        r = await rig.gw.client.post(f"/v1/premises/{esi}/devices", headers=rig.gw.op, json=_device())
        assert r.status_code == 201, r.text
        r = await rig.gw.client.delete(f"/v1/premises/{esi}/devices/{EUI}", headers=rig.gw.op)
        _refused(r, "tnmp", "delete_device", esi)
        for op, kind in (("clear", "clear_devices"), ("decommission", "decommission_han")):
            r = await rig.gw.client.post(f"/v1/premises/{esi}/han/{op}", headers=rig.gw.op)
            _refused(r, "tnmp", kind, esi)
        r = await rig.gw.client.get(f"/v1/premises/{esi}/han", headers=rig.gw.op)
        assert sorted(o["kind"] for o in r.json()["operations"]) == ["initialize_han", "provision_device"]


def test_a_profile_names_only_known_operations() -> None:
    assert load_profile("oncor").route_capabilities().provisioning == {
        "initialize_han", "provision_device", "delete_device", "clear_devices", "decommission_han"}
    assert load_profile("oncor", provisioning=[]).route_capabilities().provisioning == frozenset()
    with pytest.raises(HeadEndProfileError) as info:
        load_profile("oncor", provisioning=["provision_device", "reboot_meter"])
    assert info.value.field == "provisioning"
