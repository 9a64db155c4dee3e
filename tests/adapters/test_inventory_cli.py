"""`hangw provision inventory ESI_ID [--refresh]` from a terminal (issue 13): through a running gateway
(its routes the TDSP adapters and their emulated head-ends), and straight from a `hangw sim headend`
process."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from gateway.cli import main
from simulators.addressing import eui64_str
from simulators.clock import VirtualClock
from simulators.fleet import Fleet
from tests.adapters.gateway_rig import gateway_with_headends
from tests.adapters.test_gateway_provisioning import _code, _eui, _status, _technician
from tests.adapters.test_provision_cli import _hangw


async def test_inventory_through_the_gateway(tmp_path: Path) -> None:
    async with gateway_with_headends(tmp_path / "d", {"centerpoint": "cim"}, meters=2) as rig:
        rig.auto_join()
        fleet = rig.fleets["centerpoint"]
        esi = fleet.esi_id(0)
        ihd, pct = fleet.devices(esi)
        tech = await _technician(rig, esi)
        fleet.meter(esi).initialize_han()
        r = await rig.gw.client.post(f"/v1/premises/{esi}/devices", headers=rig.gw.auth(tech), json={
            "eui64": _eui(ihd), "device_type": "in_home_display", "install_code": _code(ihd)})
        assert r.status_code == 201, r.text
        await _status(rig, tech, esi, _eui(ihd), "joined")
        api = ["--api", rig.gw.base_url, "--token", tech]

        rc, out = await _hangw("provision", "inventory", esi, *api)
        assert rc == 0, out
        assert "our records (--refresh asks the meter)" in out and re.search(rf"{_eui(ihd)}\s+joined", out), out

        rc, out = await _hangw("provision", "inventory", esi, "--refresh", *api)
        assert rc == 0, out
        assert f"meter {eui64_str(fleet.meter(esi).eui64)} answered" in out and "through route centerpoint" in out
        assert re.search(rf"{_eui(ihd)}\s+joined\s+in_home_display\s+1\.\d", out), out

        # The PCT put on the meter by someone else: a difference, exit status 4.
        fleet.meter(esi).provision_device(pct.eui64, pct.install_code)
        fleet.meter(esi).join(pct)
        await asyncio.sleep(0.3)
        rc, out = await _hangw("provision", "inventory", esi, "--refresh", *api)
        assert rc == 4, out
        assert f"difference: {_eui(pct)} not_provisioned" in out, out

        rc, out = await _hangw("provision", "inventory", fleet.esi_id(1), "--refresh", *api)
        assert rc == 1 and "HTTP 404" in out, out  # not assigned to the technician


async def test_inventory_from_the_head_end_directly(capsys) -> None:
    head = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "sim", "headend", "--tdsp", "tnmp", "--listen", "127.0.0.1:0",
        "--meters", "3", "--install", "2", "--duration", "25", stdout=asyncio.subprocess.PIPE)
    try:
        assert head.stdout is not None
        line = (await asyncio.wait_for(head.stdout.readline(), 15)).decode()
        port = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert port, line
        fleet = Fleet(3, VirtualClock())  # the same deterministic identities as the head-end's fleet
        euis = [eui64_str(fleet.device_identity(1, slot)[0]).replace(":", "").upper() for slot in (0, 1)]
        for _attempt in range(10):  # the installed devices finish joining 2 s after the head-end starts
            rc, out = await _hangw("provision", "inventory", fleet.esi_id(1), "--tdsp", "tnmp", "--port",
                                   port.group(1))
            assert rc == 0, out
            assert all(re.search(rf"{eui}\s+(find_pending|joined)", out) for eui in euis), out
            if all(re.search(rf"{eui}\s+joined\s+\w+\s+1\.\d", out) for eui in euis):
                break
            await asyncio.sleep(0.5)
        else:
            raise AssertionError(f"not joined: {out}")
        rc, out = await _hangw("provision", "inventory", "10443729999999999", "--tdsp", "tnmp", "--port",
                               port.group(1))
        assert rc == 1 and "no inventory" in out and "no such meter" in out, out
    finally:
        head.terminate()
        await head.wait()
    assert main(["provision", "inventory", "10443720000000001"]) == 2  # neither --tdsp nor --api
    assert "--api" in capsys.readouterr().out
