"""Install codes: the published vectors (SE_FRAMES.md §7), input forms and typed errors."""

from __future__ import annotations

import pytest

import zigbee_se
from zigbee_se.install_code import InstallCodeError, expected_crc, link_key_from_install_code

VECTORS = [
    ("83FED3407A939723A5C639B26916D505C3B5", "66B6900981E1EE3CA4206B6B861C02BB"),
    ("83FED3407A939723A5C639FF4C12", "58C1828CF7F1C3FE29E7B1024AD84BFA"),
    ("11223344556677884AF7", "41618FC0C83B0E14A589954B16E31466"),
    ("83FED3407A932B70", "CD4FA064773F46941EC986C09963D1A8"),
    ("83FED3407A93972397FC", "850BE0BF5B369AC441280A53265DB167"),
]


@pytest.mark.parametrize(("code", "key"), VECTORS)
def test_published_vectors(code: str, key: str) -> None:
    parsed = zigbee_se.parse_install_code(code)
    assert parsed.code == bytes.fromhex(code)
    assert parsed.link_key.hex().upper() == key
    assert link_key_from_install_code(bytes.fromhex(code)).hex().upper() == key


def test_crc_check_value() -> None:
    assert expected_crc(bytes.fromhex("83FED3407A939723A5C639B26916D505")) == bytes.fromhex("C3B5")


@pytest.mark.parametrize(
    "text",
    ["83FE D340 7A93 9723 A5C6 39B2 6916 D505 C3B5", "83:fe:d3:40:7a:93:97:23:a5:c6:39:b2:69:16:d5:05:c3:b5",
     "83FE-D340-7A93-9723-A5C6-39B2-6916-D505-C3B5", "  0x83FED3407A939723A5C639B26916D505C3B5 "],
)
def test_separators_are_accepted(text: str) -> None:
    parsed = zigbee_se.parse_install_code(text)
    assert parsed.normalized == "83FE D340 7A93 9723 A5C6 39B2 6916 D505 C3B5"


def test_qr_code_formats_zigpy_knows() -> None:
    parsed = zigbee_se.parse_install_code("Z:000D6F0012345678$I:83FED3407A939723A5C639B26916D505C3B5")
    assert parsed.eui64 == "00:0d:6f:00:12:34:56:78"
    assert parsed.link_key.hex().upper() == VECTORS[0][1]


def test_bad_crc_names_the_expected_crc() -> None:
    with pytest.raises(InstallCodeError) as info:
        zigbee_se.parse_install_code("83FED3407A939723A5C639B26916D505C3B6")
    assert info.value.expected_crc == "C3B5"
    assert "expected C3B5" in str(info.value)


@pytest.mark.parametrize(("text", "reason"), [
    ("83FED3407A93", "6 bytes"), ("83FED3407A939723A5C639B26916D505C3B5AA", "19 bytes"),
    ("XYZ", "not a hex"), ("", "not a hex"), ("83F", "not a hex"),
])
def test_bad_input(text: str, reason: str) -> None:
    with pytest.raises(InstallCodeError) as info:
        zigbee_se.parse_install_code(text)
    assert reason in str(info.value)
