"""Golden vectors (firmware_fixtures/golden/*.json): for every vector, encode_frame gives exactly the
frame and decode_frame gives exactly the fields; install codes give their CRC and link key.

The vectors were produced by tests/zigbee_se/golden_generate.py and confirmed by tshark when
generated (each vector's `source` says so); this test needs no tshark. If one fails after a codec
change, the codec changed the wire format: fix the codec, or — if the old vector was wrong — say so
in the commit and regenerate (the generator re-checks every frame against tshark).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from zigpy.util import aes_mmo_hash

from zigbee_se import (
    SEVersion,
    command_definitions,
    decode_frame,
    encode_frame,
    parse_install_code,
    resolve_cluster,
    utc_from_datetime,
)
from zigbee_se.attributes import DATA_TYPES
from zigbee_se.codec import ALL_COMMANDS
from zigbee_se.install_code import InstallCodeError, link_key_from_install_code
from zigbee_se.types import FixedOctets

GOLDEN = Path(__file__).resolve().parents[2] / "firmware_fixtures" / "golden"
FRAME_FILES = ("price", "drlc", "messaging", "metering", "time")
GLOBAL_COMMANDS = ("read_attributes", "read_attributes_response", "report_attributes",
                   "default_response")


def _load(name: str) -> dict[str, Any]:
    return json.loads((GOLDEN / f"{name}.json").read_text())


VECTORS = [v for name in FRAME_FILES for v in _load(name)["vectors"]]
INSTALL = _load("install_codes")


def _octet_fields(cluster: str, command: str) -> set[str]:
    if command in GLOBAL_COMMANDS:
        return set()
    return {
        f.name for d in command_definitions(cluster, command) for f in d.fields
        if isinstance(getattr(f, "type", None), FixedOctets)
    }


def from_json(vector: dict[str, Any]) -> dict[str, Any]:
    """The vector's fields as the codec takes and gives them: hex strings back to bytes where the
    wire type is octets (a fixed octet field, or an attribute record of an octet data type)."""
    fields = dict(vector["fields"])
    for name in _octet_fields(vector["cluster"], vector["command"]):
        if name in fields:
            fields[name] = bytes.fromhex(fields[name])
    if "records" in fields:
        records = []
        for given in fields["records"]:
            record = dict(given)
            if "data_type" in record and DATA_TYPES[record["data_type"]][2] == "octets":
                record["value"] = bytes.fromhex(record["value"])
            records.append(record)
        fields["records"] = records
    return fields


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_encode_gives_the_golden_frame(vector: dict[str, Any]) -> None:
    frame = encode_frame(
        vector["cluster"], vector["command"], from_json(vector),
        se_version=vector["se_version"], tsn=vector["tsn"],
        max_frame_size=vector.get("max_frame_size", 73),
        direction=vector.get("direction"),
        disable_default_response=vector.get("disable_default_response", False),
        manufacturer_code=vector.get("manufacturer_code"),
    )
    assert frame.hex() == vector["frame"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_decode_gives_the_golden_fields(vector: dict[str, Any]) -> None:
    frame = bytes.fromhex(vector["frame"])
    decoded = decode_frame(vector["cluster"], frame, se_version=vector["se_version"])
    assert decoded.command == vector["command"]
    assert decoded.tsn == vector["tsn"]
    assert decoded.manufacturer_code == vector.get("manufacturer_code")
    assert decoded.fields == from_json(vector)
    assert decoded.trailing == b""
    # the gateway decodes without knowing the sender's version: the layout is inferred
    assert decode_frame(vector["cluster"], frame).fields == decoded.fields


def test_vectors_cover_every_command_and_version() -> None:
    covered = {(resolve_cluster(v["cluster"]), v["command"], v["se_version"]) for v in VECTORS}
    for definition in ALL_COMMANDS:
        for version in SEVersion:
            if version >= definition.since:
                assert (definition.cluster, definition.name, str(version)) in covered
    for cluster in ("metering", "time"):
        for command in GLOBAL_COMMANDS:
            for version in SEVersion:
                assert (resolve_cluster(cluster), command, str(version)) in covered


def test_every_vector_was_confirmed_by_tshark() -> None:
    for vector in VECTORS:
        assert "confirmed field by field by tshark" in vector["source"], vector["id"]


def test_byte_exact_examples_of_se_frames_md() -> None:
    by_id = {v["id"]: v for v in VECTORS}
    display = "0901007856341280000000003c00125065616b2070726963696e6720322d36706d"
    assert by_id["se_frames-4.2-display_message-1.1"]["frame"] == display
    # SE_FRAMES.md §2.3, as printed there
    printed = ("09 20 00 | 01000000 04 5045414B 00010000 C0C9ED2D 00 4803 23 33 C0C9ED2D F000 "
               "270A0000 FF FFFFFFFF FF FFFFFFFF FF FF 00 00")
    expected = printed.replace(" ", "").replace("|", "").lower()
    assert by_id["se_frames-2.3-publish_price-1.1"]["frame"] == expected
    from datetime import UTC, datetime

    assert utc_from_datetime(datetime(2024, 6, 1, 12, tzinfo=UTC)) == 770558400
    assert (770558400).to_bytes(4, "little").hex() == "c0c9ed2d"
    assert by_id["se_frames-1.5-utc_time-time_attribute"]["frame"].endswith("e2c0c9ed2d")


@pytest.mark.parametrize("vector", INSTALL["vectors"], ids=lambda v: v["code"])
def test_install_code_crc_and_link_key(vector: dict[str, Any]) -> None:
    code = bytes.fromhex(vector["code"])
    parsed = parse_install_code(vector["code"])
    assert parsed.code == code
    assert parsed.crc.hex().upper() == vector["crc"]
    assert parsed.link_key.hex().upper() == vector["link_key"]
    assert link_key_from_install_code(code).hex().upper() == vector["link_key"]
    # as printed on a label: groups of four, any case
    assert parse_install_code(parsed.normalized.lower()).code == code


@pytest.mark.parametrize("vector", INSTALL["wrong_crc"], ids=lambda v: v["code"])
def test_install_code_with_wrong_crc_is_refused(vector: dict[str, Any]) -> None:
    with pytest.raises(InstallCodeError) as caught:
        parse_install_code(vector["code"])
    assert caught.value.expected_crc == vector["expected_crc"]
    with pytest.raises(InstallCodeError):
        link_key_from_install_code(bytes.fromhex(vector["code"]))


@pytest.mark.parametrize("vector", INSTALL["aes_mmo"], ids=lambda v: v["input"][:8])
def test_aes_mmo_hash_vectors(vector: dict[str, Any]) -> None:
    # The hash under the link key; the codec takes it from zigpy, this pins zigpy's behaviour.
    assert bytes(aes_mmo_hash(bytes.fromhex(vector["input"]))).hex().upper() == vector["hash"]
