"""`hangw sim headend --esi-prefix`: the emulated head-end's premises get ESI IDs the gateway accepts
(17 digits, CenterPoint's 22), as docs/operator.md runs it.

docs/operator.md once said `--esi-prefix 1008901`, which made 17-digit CenterPoint ids that the
gateway then refused. The command lines run here are read from the guide, so the two cannot drift.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from ams_adapters.profiles import load_profile
from tests.gateway.conftest import Gateway

DOCS = Path(__file__).resolve().parents[2] / "docs"
HEADEND_LINE = re.compile(r"^\$? *(hangw sim headend .+)$", re.M)


def documented_commands() -> list[list[str]]:
    """Every `hangw sim headend …` line of the operator guide, split as a shell would."""
    found = [m.group(1).split("#")[0].split() for m in HEADEND_LINE.finditer((DOCS / "operator.md").read_text())]
    assert found, "docs/operator.md shows no `hangw sim headend` command line"
    return found


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


async def _run_headend(argv: list[str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


def test_the_guide_shows_a_centerpoint_headend() -> None:
    # The 22-digit case is the one that went wrong: the guide keeps an example of it.
    assert "centerpoint" in {_option(argv, "--tdsp") for argv in documented_commands()}


@pytest.mark.parametrize("argv", documented_commands(), ids=lambda argv: _option(argv, "--tdsp"))
async def test_the_documented_headend_serves_ids_the_gateway_accepts(gateway: Gateway, argv: list[str]) -> None:
    args = argv[1:]  # without "hangw"
    tdsp = _option(args, "--tdsp")
    if load_profile(tdsp).transport != "cim":
        # A free port instead of the guide's (an IEC 61968-9 head-end's --listen is the MQTT broker: kept).
        args[args.index("--listen") + 1] = "127.0.0.1:0"
    rc, out = await _run_headend([*args, "--meters", "50", "--duration", "1"])
    assert rc == 0, out
    match = re.search(r"ESI IDs (\d+) to (\d+)", out)
    assert match, out
    for esi_id in match.groups():
        assert esi_id.startswith(_option(args, "--esi-prefix"))
        r = await gateway.client.post("/v1/premises", headers=gateway.op,
                                      json={"esi_id": esi_id, "meter_number": f"SIM-{esi_id[-4:]}"})
        assert r.status_code == 201, r.text
        assert r.json()["tdsp"] == tdsp


@pytest.mark.parametrize(("prefix", "meters", "words"), [
    ("99999", "10", "matches no TDSP"),
    ("10443a2", "10", "digits"),
    ("10443721234567890", "10", "17-digit"),
    ("104437212345678", "101", "2 digits"),
])
async def test_a_prefix_that_cannot_make_valid_ids_is_refused(prefix: str, meters: str, words: str) -> None:
    rc, out = await _run_headend(["sim", "headend", "--tdsp", "tnmp", "--listen", "127.0.0.1:0",
                                  "--esi-prefix", prefix, "--meters", meters, "--duration", "1"])
    assert rc == 2, out
    assert "--esi-prefix" in out and prefix in out and words in out, out
    assert "Traceback" not in out


async def test_another_tdsps_prefix_is_served_with_a_note() -> None:
    # The ids are valid, only `hangw serve` would route them to the other TDSP's head-end: say so.
    rc, out = await _run_headend(["sim", "headend", "--tdsp", "tnmp", "--listen", "127.0.0.1:0",
                                  "--esi-prefix", "1008901", "--meters", "5", "--duration", "1"])
    assert rc == 0, out
    assert re.search(r"ESI IDs 1008901\d{15} to 1008901\d{15}", out), out
    assert "centerpoint" in out and "[routes.tdsp.centerpoint]" in out
