"""`hangw se` and `hangw install-code` as a script runs them: a real process, stdin and stdout."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


# --------------------------------------------------------------------------- batch encode: bad lines

GOOD_LINE = {"cluster": "messaging", "command": "cancel_message", "fields": {"message_id": 5}, "tsn": 3}
GOOD_HEX = "090301" "05000000" "00"


def _errors(stdout: str) -> dict[int, dict[str, object]]:
    """Error objects by the input line number they name."""
    out = {}
    for text in stdout.splitlines():
        if text.startswith("{"):
            error = json.loads(text)["error"]
            out[error["line"]] = error
    return out


def test_batch_encode_gives_each_bad_line_its_error_and_goes_on() -> None:
    lines = [
        json.dumps(GOOD_LINE),
        json.dumps({k: v for k, v in GOOD_LINE.items() if k != "cluster"}),
        json.dumps({**GOOD_LINE, "cluster": None}),
        json.dumps({**GOOD_LINE, "cluster": ["messaging"]}),
        json.dumps({**GOOD_LINE, "cluster": 1795.0}),
        json.dumps({**GOOD_LINE, "max_frame_size": "big"}),
        json.dumps({**GOOD_LINE, "max_frame_size": [82]}),
        json.dumps({**GOOD_LINE, "tsn": "3"}),
        json.dumps({**GOOD_LINE, "disable_default_response": "false"}),
        json.dumps({**GOOD_LINE, "se_version": 1.1}),
        json.dumps({**GOOD_LINE, "directon": "client_to_server"}),
        json.dumps(GOOD_LINE),
    ]
    run = hangw("se", "encode", "-", stdin="\n".join(lines) + "\n")
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode == 1
    out = run.stdout.splitlines()
    assert len(out) == len(lines)
    assert out[0] == out[-1] == GOOD_HEX
    errors = _errors(run.stdout)
    assert set(errors) == set(range(2, 12))
    expected_fields = {2: "cluster", 3: "cluster", 4: "cluster", 5: "cluster", 6: "max_frame_size",
                       7: "max_frame_size", 8: "tsn", 9: "disable_default_response", 10: "se_version",
                       11: "directon"}
    for number, field in expected_fields.items():
        error = errors[number]
        assert error["field"] == field, error
        assert error["type"] == "InputError" and error["expected"], error
        assert f"line {number}" in str(error["message"]) and field in str(error["message"]), error
    assert errors[5]["value"] == 1795.0 and "16-bit cluster id" in str(errors[5]["expected"])
    assert errors[6]["value"] == "big" and "integer" in str(errors[6]["expected"])
    assert errors[2]["value"] is None and "missing" in str(errors[2]["message"])
    assert "direction" in str(errors[11]["expected"])  # the typo is named with the keys that exist


def test_batch_encode_codec_errors_name_their_line_too() -> None:
    bad = {**GOOD_LINE, "fields": {"message_id": -1}}
    run = hangw("se", "encode", "-", stdin=json.dumps(GOOD_LINE) + "\n" + json.dumps(bad) + "\n")
    assert run.returncode == 1
    error = _errors(run.stdout)[2]
    assert error["type"] == "EncodeError" and error["field"] == "message_id" and error["value"] == -1
    assert error["expected"] and "line 2" in str(error["message"])


def test_direction_sets_the_frame_control_bit_or_is_refused() -> None:
    ack = {"cluster": "messaging", "command": "default_response", "fields": {"command_id": 0, "status": 0}}
    confirm = {"cluster": "messaging", "command": "message_confirmation",
               "fields": {"message_id": 7, "confirmation_time": 0}}
    lines = [
        {**ack, "direction": "server_to_client"},
        {**ack, "direction": "client_to_server"},
        {**GOOD_LINE, "direction": "server_to_client"},
        {**GOOD_LINE, "direction": "client_to_server"},
        {**confirm, "direction": "client_to_server"},
        {**confirm, "direction": "server_to_client"},
        {**GOOD_LINE, "direction": "up"},
        {**GOOD_LINE, "direction": 1},
    ]
    run = hangw("se", "encode", "-", stdin="".join(json.dumps(line) + "\n" for line in lines))
    out = run.stdout.splitlines()
    assert run.returncode == 1 and len(out) == len(lines)
    # Frame control bit 3 (0x08) is the direction: set server->client, clear client->server.
    assert int(out[0][:2], 16) & 0x08 and not int(out[1][:2], 16) & 0x08
    assert out[2] == GOOD_HEX
    assert not int(out[4][:2], 16) & 0x08
    errors = _errors(run.stdout)
    assert set(errors) == {4, 6, 7, 8}
    assert errors[4]["field"] == "direction" and "cancel_message goes server_to_client" in str(errors[4]["expected"])
    assert errors[6]["field"] == "direction" and "message_confirmation goes client_to_server" in str(
        errors[6]["expected"])
    for number in (7, 8):
        assert errors[number]["field"] == "direction"
        assert "client_to_server or server_to_client" in str(errors[number]["expected"])
    # `hangw se decode` reads back the direction each frame was encoded with.
    decoded = hangw("se", "decode", "-", stdin=f"messaging {out[0]}\nmessaging {out[1]}\nmessaging {out[4]}\n")
    directions = [json.loads(line)["direction"] for line in decoded.stdout.splitlines()]
    assert directions == ["server_to_client", "client_to_server", "client_to_server"]
    # The one-frame form takes --direction too.
    one = hangw("se", "encode", "messaging", "default_response", json.dumps(ack["fields"]),
                "--direction", "client_to_server")
    assert one.returncode == 0 and one.stdout.strip() == out[1]
    wrong = hangw("se", "encode", "messaging", "cancel_message", '{"message_id": 5}', "--direction",
                  "client_to_server")
    assert wrong.returncode == 1 and "cancel_message goes server_to_client" in wrong.stderr
    assert "Traceback" not in wrong.stderr


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
LINE_KEYS = ["cluster", "command", "fields", "se_version", "tsn", "disable_default_response",
             "manufacturer_code", "max_frame_size", "direction"]
BASE_LINES = [
    GOOD_LINE,
    {"cluster": "messaging", "command": "display_message", "fields": {
        "message_id": 1, "message_control": 0, "start_time": 0, "duration_in_minutes": 60, "message": "hi"}},
    {"cluster": "messaging", "command": "default_response", "fields": {"command_id": 0, "status": 0}},
    {"cluster": "drlc", "command": "load_control_event", "fields": {
        "issuer_event_id": 1, "device_class": 1, "start_time": 0, "duration_in_minutes": 10,
        "criticality_level": 1}},
]


def _fuzzed_line() -> st.SearchStrategy[str]:
    def mutate(base: dict[str, object], key: str, value: object, drop: bool, in_fields: bool) -> str:
        line = dict(base)
        if in_fields and isinstance(line.get("fields"), dict):
            fields = dict(line["fields"])  # type: ignore[call-overload]
            name = sorted(fields)[hash(key) % len(fields)] if fields else key
            fields[name] = value
            line["fields"] = fields
        elif drop:
            line.pop(key, None)
        else:
            line[key] = value
        return json.dumps(line)

    return st.builds(mutate, st.sampled_from(BASE_LINES), st.sampled_from(LINE_KEYS), JSON_VALUES,
                     st.booleans(), st.booleans()) | JSON_VALUES.map(json.dumps) | st.text(max_size=30)


def _run_in_process(stdin: str) -> tuple[int, str]:
    from gateway.cli import main

    out = io.StringIO()
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out):
            status = main(["se", "encode", "-"])
    finally:
        sys.stdin = saved
    return status, out.getvalue()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_fuzzed_line(), min_size=1, max_size=5))
def test_batch_encode_never_raises_on_any_json_value(lines: list[str]) -> None:
    lines = [line.replace("\n", " ").replace("\r", " ") for line in lines]
    status, stdout = _run_in_process("".join(line + "\n" for line in lines))  # no exception escapes
    out = stdout.split("\n")  # "\n" only: str.splitlines would also split at U+2028 inside a value
    assert out.pop() == "" and len(out) == len(lines)
    failed = False
    for number, text in enumerate(out, 1):
        if text.startswith("{"):
            error = json.loads(text)["error"]
            failed = True
            # Only typed refusals: an unexpected exception would be a bug that the batch survived.
            assert error["type"] in ("InputError", "EncodeError"), error
            assert error["line"] == number and "field" in error and error["expected"], error
        else:
            bytes.fromhex(text)
    assert status == (1 if failed else 0)
