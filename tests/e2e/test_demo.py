"""`hangw demo --once`: the newcomer's first command runs the whole walkthrough through every kind of route
(MultiSpeak, IEC 61968-9 over MQTT and binary head-ends through the AMS adapters, and the gateway's own
radio against the EZSP emulator), says which route each answer came through, and says so. Without the
MQTT broker it says in one line what it leaves out and runs the rest."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from sandbox.ports import free_port

ROUTES = {"multispeak": "via MultiSpeak head-end", "cim": "via IEC 61968-9 head-end over MQTT",
          "binary": "via binary head-end over TCP", "radio": "via the gateway's radio (EZSP coordinator)"}


def _demo(tmp_path: Path, *extra: str) -> str:
    done = subprocess.run([sys.executable, "-m", "gateway", "demo", "--once", "--data-dir", str(tmp_path / "demo"),
                           "--per-tdsp", "4", *extra], capture_output=True, text=True, timeout=150, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every step got its expected answers" in done.stdout
    assert (tmp_path / "demo" / "hangw.db").exists()
    return done.stdout


def _answers(out: str, state: str) -> dict[str, set[str]]:
    """ESI IDs that answered `state`, by the route named on their line."""
    found: dict[str, set[str]] = {}
    for esi_id, line_state, via in re.findall(r"\] (\d{17,22}) +[\w-]+: (\w+) +(via .+)$", out, re.M):
        if line_state == state:
            found.setdefault(via, set()).add(esi_id)
    return found


def test_demo_once_gets_every_answer_through_every_route(tmp_path: Path) -> None:
    out = _demo(tmp_path)
    assert "left out" not in out
    assert "every premise answered 'confirmed': 2 via MultiSpeak, 2 via IEC 61968-9, 1 via binary, 1 via radio" in out
    assert "every premise answered 'acknowledged'" in out
    assert "every premise answered 'completed' (the radio's 'received')" in out
    confirmed = _answers(out, "confirmed")
    for via in ROUTES.values():
        hits = [esi for route, ids in confirmed.items() if route.startswith(via) for esi in ids]
        assert hits, f"no premise confirmed the text {via}\n{out}"
    # One premise per TDSP through its head-end: the five TDSPs' ESI ID prefixes.
    head_ends = {esi for route, ids in _answers(out, "completed").items() if "head-end" in route for esi in ids}
    assert sorted(e[:7] for e in head_ends) == ["1003278", "1008901", "1020404", "1040051", "1044372"]
    assert _answers(out, "received").get(ROUTES["radio"]), out
    assert re.search(r"radio-ihd: joined +via the gateway's radio", out), out


def test_demo_without_the_mqtt_broker_says_so_and_runs_the_rest(tmp_path: Path) -> None:
    port = free_port()  # a port nothing listens on
    out = _demo(tmp_path, "--mqtt", f"127.0.0.1:{port}")
    left_out = [line for line in out.splitlines() if "left out" in line]
    assert left_out == [f"  left out: the IEC 61968-9 head-ends (centerpoint, aep_north): no MQTT broker at "
                        f"127.0.0.1:{port} (start Mosquitto to include them)"], out
    assert "IEC 61968-9 head-end over MQTT (" not in out
    assert "every premise answered 'confirmed': 2 via MultiSpeak, 1 via binary, 1 via radio" in out
