"""`hangw se` and `hangw install-code` as a script runs them: a real process, stdin and stdout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DISPLAY_HEX = "0901007856341280000000003c00125065616b2070726963696e6720322d36706d"


def hangw(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def test_encode_prints_the_whole_frame_as_hex() -> None:
    fields = {"message_id": 0x12345678, "message_control": 0x80, "start_time": 0, "duration_in_minutes": 60,
              "message": "Peak pricing 2-6pm"}
    run = hangw("se", "encode", "messaging", "display_message", json.dumps(fields), "--tsn", "1")
    assert run.returncode == 0, run.stderr
    assert run.stdout == DISPLAY_HEX + "\n"
    run = hangw("se", "encode", "0x0703", "display_message", json.dumps(fields), "--tsn", "1",
                "--se-version", "1.2", "--disable-default-response")
    assert run.stdout.strip() == "19" + DISPLAY_HEX[2:] + "00"


def test_encode_error_names_field_and_limit() -> None:
    run = hangw("se", "encode", "drlc", "load_control_event", json.dumps(
        {"issuer_event_id": 1, "device_class": 1, "start_time": 0, "duration_in_minutes": 1441,
         "criticality_level": 1}))
    assert run.returncode == 1
    assert "duration_in_minutes: 1441" in run.stderr and "0..1440" in run.stderr


def test_decode_prints_one_json_object() -> None:
    run = hangw("se", "decode", "messaging", DISPLAY_HEX)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out == {"cluster": "messaging", "command": "display_message", "direction": "server_to_client",
                   "tsn": 1, "fields": {"message_id": 0x12345678, "message_control": 0x80, "start_time": 0,
                                        "duration_in_minutes": 60, "message": "Peak pricing 2-6pm"}}
    rest = "01000000 02 05000000 03 0080 0080 80 ff 00 00 " + "ff" * 42 + " abcd"
    run = hangw("se", "decode", "drlc", "01 00 00 " + rest)
    out = json.loads(run.stdout)
    assert out["fields"]["signature"] == "ff" * 42
    assert out["fields"]["cooling_temperature_set_point_applied"] == -32768
    assert out["trailing"] == "abcd"


def test_batch_encode_writes_one_line_per_input_and_fails_on_any_error() -> None:
    lines = [
        {"cluster": "messaging", "command": "cancel_message", "fields": {"message_id": 5}, "tsn": 3},
        {"cluster": "drlc", "command": "report_event_status", "se_version": "1.0",
         "fields": {"issuer_event_id": 1, "event_status": 2, "event_status_time": 0, "criticality_level_applied": 1,
                    "signature": "00" * 42}},
        {"cluster": "messaging", "command": "cancel_message", "fields": {"message_id": -1}},
    ]
    stdin = "\n".join(json.dumps(line) for line in lines) + "\nnot json\n"
    run = hangw("se", "encode", "-", stdin=stdin)
    assert run.returncode == 1
    out = run.stdout.splitlines()
    assert len(out) == 4
    assert out[0] == "090301" "05000000" "00"
    assert out[1].endswith("00" * 42) and len(bytes.fromhex(out[1])) == 63
    error = json.loads(out[2])["error"]
    assert error["type"] == "EncodeError" and error["field"] == "message_id"
    assert json.loads(out[3])["error"]["type"] == "InputError"


def test_batch_decode() -> None:
    run = hangw("se", "decode", "-", stdin=f"messaging {DISPLAY_HEX}\ndrlc 0900\n")
    assert run.returncode == 1
    first, second = (json.loads(line) for line in run.stdout.splitlines())
    assert first["command"] == "display_message"
    assert second["error"]["type"] == "DecodeError" and second["error"]["offset"] == 2
    ok = hangw("se", "decode", "-", stdin=f"messaging {DISPLAY_HEX}\n")
    assert ok.returncode == 0


def test_install_code_check() -> None:
    run = hangw("install-code", "check", "83FE D340 7A93 9723 A5C6 39B2 6916 D505 C3B5")
    assert run.returncode == 0
    assert run.stdout.splitlines() == [
        "install code: 83FE D340 7A93 9723 A5C6 39B2 6916 D505 C3B5",
        "crc: C3B5 ok",
        "link key: 66B6900981E1EE3CA4206B6B861C02BB",
    ]
    bad = hangw("install-code", "check", "--json", "83FED3407A939723A5C639B26916D505C3B6")
    assert bad.returncode == 1
    verdict = json.loads(bad.stdout)
    assert verdict["valid"] is False and verdict["expected_crc"] == "C3B5"
    assert "expected C3B5" in verdict["reason"]


def test_demo_tour_runs(tmp_path: Path) -> None:
    # The codec tour became the gateway walkthrough (issue 5; tests/e2e/test_demo.py checks it).
    run = hangw("demo", "--once", "--data-dir", str(tmp_path / "demo"), "--per-tdsp", "2")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "every step got its expected answers" in run.stdout
