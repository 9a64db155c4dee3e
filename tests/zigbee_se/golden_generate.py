"""Writes the golden SE vectors in firmware_fixtures/golden/ (see its README.md).

    .venv/bin/python -m tests.zigbee_se.golden_generate

Every frame comes from `zigbee_se.encode_frame` and is confirmed, before anything is written, by
Wireshark's Smart Energy dissector (tshark) field by field, with the same comparison and the same
documented exceptions as test_tshark_differential.py. The byte-exact examples of SE_FRAMES.md are
also checked against the bytes printed in that document. It refuses to write if anything differs.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zigbee_se import SEVersion, decode_frame, encode_frame, resolve_cluster, utc_from_datetime
from zigbee_se.install_code import expected_crc

from . import se_cases
from . import tshark_oracle as oracle
from .test_tshark_differential import KNOWN_MISTAKES

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "firmware_fixtures" / "golden"
T = se_cases.T

# Byte-exact frames printed in SE_FRAMES.md (frame hex as printed there, spaces removed).
DOCUMENT_EXAMPLES: list[dict[str, Any]] = [
    {
        "id": "se_frames-4.2-display_message-1.0",
        "cluster": "messaging", "command": "display_message", "se_version": "1.0", "tsn": 1,
        "fields": {"message_id": 0x12345678, "message_control": 0x80, "start_time": 0,
                   "duration_in_minutes": 60, "message": "Peak pricing 2-6pm"},
        "frame": "0901007856341280000000003c00125065616b2070726963696e6720322d36706d",
        "doc": "SE_FRAMES.md §4.2 brief example (byte-exact)",
    },
    {
        "id": "se_frames-4.2-display_message-1.1",
        "cluster": "messaging", "command": "display_message", "se_version": "1.1", "tsn": 1,
        "fields": {"message_id": 0x12345678, "message_control": 0x80, "start_time": 0,
                   "duration_in_minutes": 60, "message": "Peak pricing 2-6pm"},
        "frame": "0901007856341280000000003c00125065616b2070726963696e6720322d36706d",
        "doc": "SE_FRAMES.md §4.2 brief example (byte-exact)",
    },
    {
        "id": "se_frames-2.3-publish_price-1.1",
        "cluster": "price", "command": "publish_price", "se_version": "1.1", "tsn": 0x20,
        "fields": {"provider_id": 1, "rate_label": "PEAK", "issuer_event_id": 256,
                   "current_time": T, "unit_of_measure": 0, "currency": 840,
                   "price_trailing_digit": 2, "price_tier": 3, "number_of_price_tiers": 3,
                   "register_tier": 3, "start_time": T, "duration_in_minutes": 240, "price": 2599},
        "frame": "092000" "01000000" "045045414b" "00010000" "c0c9ed2d" "00" "4803" "23" "33"
                 "c0c9ed2d" "f000" "270a0000" "ff" "ffffffff" "ff" "ffffffff" "ff" "ff" "00" "00",
        "doc": "SE_FRAMES.md §2.3 PublishPrice sample frame (SE 1.1, L = 4; byte-exact)",
    },
    {
        "id": "se_frames-1.5-utc_time-time_attribute",
        "cluster": "time", "command": "report_attributes", "se_version": "1.1", "tsn": 0,
        "fields": {"records": [{"attribute_id": 0, "value": 770558400}]},
        "frame": "08000a" "0000" "e2" "c0c9ed2d",
        "doc": "SE_FRAMES.md §1.5: 2024-06-01 12:00:00Z = UTCTime 770558400 = C0 C9 ED 2D, "
               "reported as the Time cluster's Time attribute",
    },
]

# SE_FRAMES.md §7 (published install-code vectors; keys recomputed there with zigpy 2.4.0)
INSTALL_CODES = [
    ("83FED3407A939723A5C639B26916D505", "C3B5", "66B6900981E1EE3CA4206B6B861C02BB",
     "the Zigbee specification's example, published in ZH test/zspec/utils.test.ts, zigpy "
     "tests/test_util.py and the TI Z-Stack sample app"),
    ("83FED3407A939723A5C639FF", "4C12", "58C1828CF7F1C3FE29E7B1024AD84BFA",
     "published in ZH test/zspec/utils.test.ts (12+2 bytes)"),
    ("1122334455667788", "4AF7", "41618FC0C83B0E14A589954B16E31466",
     "published in zigpy tests/test_util.py (8+2 bytes)"),
    ("83FED3407A93", "2B70", "CD4FA064773F46941EC986C09963D1A8",
     "CRC from ZH test/utils.test.ts; key computed in SE_FRAMES.md (6+2 bytes)"),
    ("83FED3407A939723", "97FC", "850BE0BF5B369AC441280A53265DB167",
     "CRC from ZH test/utils.test.ts; key computed in SE_FRAMES.md (8+2 bytes)"),
]
AES_MMO = [
    ("C0", "AE3A102A28D43EE0D4A09E22788B206C"),
    ("C0C1C2C3C4C5C6C7C8C9CACBCCCDCECF", "A7977E88BC0B61E8210827109A228F2D"),
    ("76777475727370717E7F7C7D7A7B7879C0", "3C3D537529A7A9A03F669DCD886CB52C"),
]


def to_json(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def frame_vectors() -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = []
    for example in DOCUMENT_EXAMPLES:
        frame = encode_frame(example["cluster"], example["command"], example["fields"],
                             se_version=example["se_version"], tsn=example["tsn"],
                             max_frame_size=None)
        if frame.hex() != example["frame"]:
            sys.exit(f"{example['id']}: encode_frame gives {frame.hex()}, SE_FRAMES.md prints "
                     f"{example['frame']}")
        vectors.append({**{k: v for k, v in example.items() if k not in ("fields", "doc")},
                        "note": example["doc"], "max_frame_size": None})
    for case in se_cases.all_cases():
        vector: dict[str, Any] = {
            "id": case.id, "cluster": case.cluster, "command": case.command,
            "se_version": str(case.se_version), "tsn": case.tsn, "frame": case.encode().hex(),
            "note": f"value set '{case.name}' of tests/zigbee_se/se_cases.py",
        }
        if case.max_frame_size is None:
            vector["max_frame_size"] = None
        if case.direction is not None:
            vector["direction"] = int(case.direction)
        if case.disable_default_response:
            vector["disable_default_response"] = True
        if case.manufacturer_code is not None:
            vector["manufacturer_code"] = case.manufacturer_code
        vectors.append(vector)
    return vectors


def confirm_with_tshark(vectors: list[dict[str, Any]]) -> str:
    frames = [(resolve_cluster(v["cluster"]), bytes.fromhex(v["frame"])) for v in vectors]
    packets = oracle.dissect([(c, f, bool(f[0] & 0x08)) for c, f in frames])
    version = oracle.tshark_release()
    failures = []
    for v, (cluster, frame), packet in zip(vectors, frames, packets, strict=True):
        verdict = oracle.compare_frame(cluster, v["command"], SEVersion.parse(v["se_version"]),
                                       frame, packet, mistakes=KNOWN_MISTAKES)
        if not verdict.ok:
            failures.append(f"{v['id']}: {verdict.mismatches}")
        # the full decoded field set is what the golden file freezes
        decoded = decode_frame(cluster, frame, se_version=v["se_version"])
        v["fields"] = to_json(decoded.fields)
        exceptions = sorted(verdict.mistakes_confirmed)
        v["source"] = (
            f"{v.pop('note')}; frame from zigbee_se.encode_frame, confirmed field by field by "
            f"tshark {version} (Wireshark's Smart Energy dissector)"
            + (f" with documented exceptions {', '.join(exceptions)}" if exceptions else "")
        )
    if failures:
        sys.exit("tshark disagrees; nothing written:\n" + "\n".join(failures))
    return version


def install_code_vectors() -> dict[str, Any]:
    good, bad = [], []
    for code, crc, key, where in INSTALL_CODES:
        computed = expected_crc(bytes.fromhex(code)).hex().upper()
        if computed != crc:
            sys.exit(f"install code {code}: CRC {computed}, SE_FRAMES.md says {crc}")
        good.append({"code": code + crc, "crc": crc, "link_key": key,
                     "source": f"SE_FRAMES.md §7; {where}"})
        wrong = f"{int(crc, 16) ^ 0x0100:04X}"
        bad.append({"code": code + wrong, "expected_crc": crc,
                    "source": f"SE_FRAMES.md §7 vector {code} with its CRC byte changed "
                              f"({crc} -> {wrong}): must be refused naming the expected CRC"})
    bad.append({"code": "83FED3407A939723A5C639B26916D5", "expected_crc": None,
                "source": "16-byte code with its 2-byte CRC cut off: wrong length"})
    return {
        "description": "Install codes (SE_FRAMES.md §7): code incl. CRC-16/X-25 (little-endian) -> "
                       "Trust Center link key (AES-128-MMO hash of the whole code).",
        "vectors": good,
        "wrong_crc": bad,
        "aes_mmo": [{"input": i, "hash": h,
                     "source": "Zigbee spec 05-3474-21 §C.5 via SE_FRAMES.md §7"} for i, h in AES_MMO],
    }


def main() -> None:
    vectors = frame_vectors()
    version = confirm_with_tshark(vectors)
    by_file: dict[str, list[dict[str, Any]]] = {}
    for v in vectors:
        by_file.setdefault(v["cluster"], []).append(v)
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for cluster, items in sorted(by_file.items()):
        doc = {
            "description": f"Golden ZCL frames of the {cluster} cluster (cluster 0x"
                           f"{resolve_cluster(cluster):04x}), profile 0x0109, for every command and SE "
                           "version; fields are the full decoded field set (bytes as hex).",
            "generated_by": "tests/zigbee_se/golden_generate.py",
            "confirmed_with": f"tshark {version}",
            "vectors": items,
        }
        (GOLDEN / f"{cluster}.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    (GOLDEN / "install_codes.json").write_text(
        json.dumps(install_code_vectors(), indent=1, ensure_ascii=False) + "\n"
    )
    when = utc_from_datetime(datetime(2024, 6, 1, 12, tzinfo=UTC))
    assert when == T, when
    print(f"wrote {len(vectors)} frame vectors in {len(by_file)} files, confirmed with tshark {version}")


if __name__ == "__main__":
    main()
