"""The field technician's scenario driven through `hangw radio` and `hangw sim ncp`, as real
processes: a coordinator emulator on a pty with a display in pairing mode, then every command.
The inventory lives in the gateway's store in the data directory (HANGW_DATA_DIR), under the
premise HANGW_RADIO_ESI_ID names."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

EUI = "00:0d:6f:00:0a:90:69:e7"
CODE = "83FED3407A939723A5C639B26916D505C3B5"
WRONG_CODE = "00112233445566778899AABBCCDDEEFF528F"
ROOT = Path(__file__).resolve().parents[2]
ESI = "10443720000000001"


def premise_in_store(data_dir: Path) -> None:
    """The operator imported the premise before the technician arrives."""
    from datetime import UTC, datetime

    from gateway.store.store import open_store

    async def run() -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        store = await open_store(f"sqlite+aiosqlite:///{data_dir.resolve() / 'hangw.db'}")
        try:
            await store.upsert_premise({
                "esi_id": ESI, "tdsp": "oncor", "meter_number": "MTR-1", "customer_email": None, "rep": None,
                "premise_class": "residential", "se_version": "1.1", "enhanced_meter": False}, datetime.now(UTC))
        finally:
            await store.close()

    asyncio.run(run())


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[dict[str, str]]:
    link = tmp_path / "ttyNCP"
    log = tmp_path / "sim.log"
    command = ["sim", "ncp", "--pty", "--link", str(link), "--device", f"{EUI}={CODE}", "--time-poll", "1"]
    with log.open("w") as out:
        sim = subprocess.Popen([sys.executable, "-m", "gateway", *command], cwd=ROOT, stdout=out, stderr=out)
    try:
        for _ in range(400):
            if "device path:" in log.read_text() or sim.poll() is not None:
                break
            time.sleep(0.05)
        assert f"device path: {link}" in log.read_text(), log.read_text()
        premise_in_store(tmp_path / "data")
        data = str(tmp_path / "data")
        yield dict(os.environ, HANGW_RADIO_DEVICE=str(link), HANGW_DATA_DIR=data, HANGW_RADIO_ESI_ID=ESI)
    finally:
        sim.terminate()
        sim.wait(10)


def hangw(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "radio", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_ports_lists_something_or_says_none() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "gateway", "radio", "ports"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert run.returncode in (0, 1)
    assert run.stdout.strip()


def test_field_scenario_from_the_command_line(coordinator: dict[str, str], tmp_path: Path) -> None:
    env = coordinator
    run = hangw(env, "info")
    assert run.returncode == 0, run.stderr
    assert "coordinator: Nabu Casa SkyConnect v1.0" in run.stdout
    assert "firmware: EmberZNet 7.4.4.0 build 0, EZSP protocol 13" in run.stdout
    assert "network: none" in run.stdout

    run = hangw(env, "form", "--channel", "20")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("formed: channel 20, PAN 0x")

    run = hangw(env, "provision", "--eui64", EUI, "--install-code", WRONG_CODE, "--timeout", "2")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "waiting for 00:0d:6f:00:0a:90:69:e7 to join: 2s left" in run.stdout
    assert "not joined: no join within 2s" in run.stdout

    run = hangw(env, "provision", "--eui64", EUI, "--install-code", CODE, "--timeout", "20")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "install code 83FE D340 7A93 9723 A5C6 39B2 6916 D505 C3B5: CRC ok" in run.stdout
    assert f"joined: {EUI} as 0x" in run.stdout

    run = hangw(env, "devices")  # from the gateway's store: no coordinator needed
    assert run.stdout.startswith(f"{EUI}\tjoined\tnwk 0x"), run.stdout + run.stderr
    assert "\tin_home_display\t" in run.stdout, run.stdout  # its SE device id 0x0502, not a meter's 0x0501
    assert (tmp_path / "data" / "radio" / "zigpy.db").exists()  # zigpy's network state, beside it

    run = hangw(env, "send-text", "--eui64", EUI, "--text", "Peak at 5pm", "--message-id", "42")
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == f"delivered to {EUI} (APS acknowledged)"
    assert lines[1].startswith("confirmed message 42 at ")

    run = hangw(env, "send-price", "--eui64", EUI, "--price", "0.1234", "--issuer-event-id", "77")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[1].startswith("price 77 acknowledged at ")

    run = hangw(env, "send-event", "--eui64", EUI, "--issuer-event-id", "9", "--timeout", "2")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[1].startswith("event 9: received at ")

    backup = tmp_path / "backup.json"
    run = hangw(env, "backup", "--out", str(backup))
    assert run.returncode == 0, run.stderr
    saved = json.loads(backup.read_text())
    assert saved["network_info"]["channel"] == 20
    assert oct(backup.stat().st_mode & 0o777) == "0o600"

    run = hangw(env, "remove", "--eui64", EUI)
    assert run.stdout.strip() == f"{EUI} left the HAN", run.stdout + run.stderr
    assert hangw(env, "devices").stdout.strip() == "no devices"
    [line] = hangw(env, "devices", "--all").stdout.splitlines()
    assert line.startswith(f"{EUI}\tremoved\t") and line.endswith("\tleft the HAN")

    # Decommission asks first; without a "y" nothing happens.
    run = subprocess.run([sys.executable, "-m", "gateway", "radio", "decommission"], cwd=ROOT, env=env,
                         input="n\n", capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 1 and "Continue? [y/N]" in run.stdout and "not decommissioned" in run.stdout
    # (The simulated display pairs once: decommissioning with devices is tested on the route.)
    run = hangw(env, "decommission", "--yes")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "decommissioned: 0 device(s) removed, coordinator has no network" in run.stdout
    assert "network: none" in hangw(env, "info").stdout
    # (The inventory was already empty before decommissioning, and decommissioning said it removed
    # none: another `devices` here proved nothing more, one process start less.)


def test_watch_shows_decoded_device_traffic(coordinator: dict[str, str]) -> None:
    env = coordinator
    assert hangw(env, "form").returncode == 0
    assert hangw(env, "provision", "--eui64", EUI, "--install-code", CODE).returncode == 0
    watch = subprocess.Popen(
        [sys.executable, "-m", "gateway", "radio", "watch", "--seconds", "5"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The port is exclusive, so the traffic comes from the display itself: it re-reads the
    # ESI's time every second (--time-poll 1), and watch decodes each request.
    out, err = watch.communicate(timeout=60)
    assert watch.returncode == 0, err
    assert "watching" in out and "coordinator reachable" in out
    reads = [line for line in out.splitlines() if f"{EUI} 0x000A read_attributes" in line]
    assert len(reads) >= 3, out
    assert '"attribute_ids": [0, 1]' in reads[0] and "NOT APS-ENCRYPTED" not in reads[0]


def test_usage_errors_name_the_field(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from gateway.cli import main

    monkeypatch.delenv("HANGW_RADIO_DEVICE", raising=False)
    monkeypatch.delenv("HANGW_RADIO_ESI_ID", raising=False)
    assert main(["radio", "info"]) == 2
    assert "--device" in capsys.readouterr().err
    assert main(["radio", "info", "--device", "/dev/ttyUSB0", "--baudrate", "1200"]) == 2
    assert "baudrate=1200" in capsys.readouterr().err
    assert main(["radio", "send-price", "--device", "/dev/ttyUSB0", "--eui64", EUI, "--price", "-1"]) == 2
    assert "--price" in capsys.readouterr().err
    # A mistyped install code is refused on entry, before the coordinator is opened (there is none at
    # this path: opening it would exit 3), so nothing is sent.
    bad_crc = CODE[:-1] + "6"
    assert main(["radio", "provision", "--device", "/nonexistent/ttyNCP", "--eui64", EUI,
                 "--install-code", bad_crc]) == 2
    assert "--install-code" in (err := capsys.readouterr().err) and "expected C3B5" in err, err
    # a failed start must not leave zigpy's database thread holding the process open: a process
    env = dict(os.environ, HANGW_DATA_DIR=str(tmp_path / "data"))
    run = hangw(env, "send-text", "--device", "/nonexistent/ttyNCP", "--eui64", EUI, "--text", "x")
    assert run.returncode == 3 and "coordinator at /nonexistent/ttyNCP" in run.stderr
    assert "FileNotFoundError" in run.stderr
    # The inventory commands need to know the premise, and the premise must be in the store.
    assert main(["radio", "devices", "--data-dir", str(tmp_path / "data")]) == 2
    assert "--esi-id" in capsys.readouterr().err
    assert main(["radio", "devices", "--data-dir", str(tmp_path / "data"), "--esi-id", ESI]) == 2
    assert f"esi_id='{ESI}': not a premise in the gateway's store" in capsys.readouterr().err


def test_send_commands_check_what_the_api_checks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The send commands build their SE command with the API's builder (gateway/pipeline/requests.py):
    its limits, named by the flag, before the coordinator is opened (no device here to open)."""
    from gateway.cli import main

    monkeypatch.delenv("HANGW_RADIO_ESI_ID", raising=False)
    base = ["--device", "/nonexistent/ttyNCP", "--eui64", EUI]
    assert main(["radio", "send-text", *base, "--text", "x" * 200]) == 2
    err = capsys.readouterr().err
    assert "--text: 200 UTF-8 bytes is over the limit of 58 bytes for SE 1.1 meters on route radio" in err
    assert main(["radio", "send-event", *base, "--device-class", "0x1000", "--duration", "2000"]) == 2
    err = capsys.readouterr().err
    assert "--device-class: bits 0x1000 are not SE device classes" in err
    assert "--duration: 2000 minutes is over the limit of 1440 minutes" in err
    assert main(["radio", "send-price", *base, "--price", "0.1", "--rate-label", "a" * 13]) == 2
    assert "--rate-label" in capsys.readouterr().err
