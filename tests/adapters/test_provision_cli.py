"""`hangw provision` against a `hangw sim headend` process: install code in, joined (or refused)
out, with the live status on the terminal."""

from __future__ import annotations

import asyncio
import re
import sys

import pytest

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
