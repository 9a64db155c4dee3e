"""`hangw install-code check CODE`: what a technician types or scans, checked before it travels."""

from __future__ import annotations

import argparse
import json
from typing import Any

from zigbee_se.install_code import InstallCodeError, parse_install_code


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("install-code", help="check install codes")
    sub = parser.add_subparsers(dest="install_code_command", metavar="ACTION", required=True)
    check = sub.add_parser(
        "check",
        help="normalize a code, verify its CRC and derive the link key",
        description="CODE is hex with or without separators, or a device QR code. Exit 1 if the "
        "code is unusable (wrong length, not hex, bad CRC).",
    )
    check.add_argument("code", help="install code (hex, separators allowed) or QR code text")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    try:
        code = parse_install_code(args.code)
    except InstallCodeError as exc:
        if args.json:
            print(json.dumps({"valid": False, "reason": exc.reason, "expected_crc": exc.expected_crc}))
        else:
            print(f"install code: {args.code}")
            print(f"crc: BAD — {exc.reason}")
        return 1
    if args.json:
        out = {"valid": True, "install_code": code.code.hex().upper(), "crc": code.crc.hex().upper(),
               "link_key": code.link_key.hex().upper()}
        if code.eui64:
            out["eui64"] = code.eui64
        print(json.dumps(out))
        return 0
    if code.eui64:
        print(f"eui64: {code.eui64}")
    print(f"install code: {code.normalized}")
    print(f"crc: {code.crc.hex().upper()} ok")
    print(f"link key: {code.link_key.hex().upper()}")
    return 0
