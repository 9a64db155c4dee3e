"""`hangw provision` against a `hangw sim headend` process: install code in, joined (or refused)
out, with the live status on the terminal."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from simulators.addressing import eui64_str
from simulators.clock import VirtualClock
from simulators.fleet import Fleet


async def _hangw(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode()


@pytest.mark.parametrize("tdsp", ["oncor", "tnmp"])
async def test_provision_a_device_from_the_terminal(tdsp: str) -> None:
    head = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "sim", "headend", "--tdsp", tdsp, "--listen", "127.0.0.1:0",
        "--meters", "5", "--auto-join", "--duration", "25", stdout=asyncio.subprocess.PIPE)
    try:
        assert head.stdout is not None
        line = (await asyncio.wait_for(head.stdout.readline(), 15)).decode()
        port = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert port, line
        where = ["--url", f"http://127.0.0.1:{port.group(1)}"] if tdsp == "oncor" else ["--port", port.group(1)]
        fleet = Fleet(5, VirtualClock())  # the same deterministic identities as the head-end's fleet
        esi = fleet.esi_id(1)
        eui, code = fleet.device_identity(1, 0)
        rc, out = await _hangw("provision", "init", "--tdsp", tdsp, "--esi", esi, "--wait", "10", *where)
        assert rc == 0 and "done" in out, out
        rc, out = await _hangw("provision", "device", "--tdsp", tdsp, "--esi", esi, "--eui64", eui64_str(eui),
                               "--install-code", code.hex(), "--wait", "10", *where)
        assert rc == 0, out
        assert re.search(r"accepted.*\n.*requested", out) and "find_pending" in out and "joined" in out, out
        bad = bytearray(code)
        bad[0] ^= 1
        rc, out = await _hangw("provision", "device", "--tdsp", tdsp, "--esi", esi, "--eui64", eui64_str(eui),
                               "--install-code", bytes(bad).hex(), *where)
        assert rc == 1 and "expected" in out and "nothing was sent" in out, out
    finally:
        head.terminate()
        await head.wait()


async def test_provision_through_the_gateway_api(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`hangw provision … --api URL --token T`: the same commands through a running gateway (its
    routes the TDSP adapters), as an assigned technician."""
    from tests.adapters.gateway_rig import gateway_with_headends

    async with gateway_with_headends(tmp_path / "d", {"tnmp": "binary"}, meters=2) as rig:
        rig.auto_join()
        fleet = rig.fleets["tnmp"]
        esi = fleet.esi_id(0)
        ihd = fleet.devices(esi)[0]
        r = await rig.gw.client.post("/v1/technicians", headers=rig.gw.op, json={"name": "T", "email": "t@x.test"})
        tech = r.json()["id"]
        await rig.gw.client.post(f"/v1/technicians/{tech}/assignments", headers=rig.gw.op, json={"esi_id": esi})
        token = (await rig.gw.client.post(f"/v1/technicians/{tech}/credentials", headers=rig.gw.op,
                                          json={})).json()["token"]
        api = ["--api", rig.gw.base_url, "--token", token, "--esi", esi, "--wait", "15"]
        rc, out = await _hangw("provision", "init", *api)
        assert rc == 0 and "initialize_han" in out and "done" in out, out
        rc, out = await _hangw("provision", "device", *api, "--eui64", eui64_str(ihd.eui64),
                               "--install-code", ihd.install_code.hex())
        assert rc == 0, out
        assert re.search(r"provision_requested\n.*requested\n.*find_pending\n.*joined", out), out
        rc, out = await _hangw("provision", "clear", *api)
        assert rc == 0 and "done" in out, out
    assert main(["provision", "init", "--esi", "10443720000000001"]) == 2  # neither --tdsp nor --api
    assert "--api" in capsys.readouterr().out
