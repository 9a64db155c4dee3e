"""`hangw config check FILE` and `hangw config show`: validate and print the effective config."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gateway.config import ConfigError, load_config


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("config", help="check or show a configuration")
    sub = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate a TOML config (with HANGW_… overrides); "
                           "names each bad key and value")
    check.add_argument("file", type=Path)
    check.set_defaults(func=check_config)
    show = sub.add_parser("show", help="print the effective config as JSON (secrets masked)")
    show.add_argument("file", type=Path, nargs="?")
    show.set_defaults(func=show_config)


def check_config(args: argparse.Namespace) -> int:
    try:
        load_config(args.file)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{args.file}: OK")
    return 0


def show_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    data = config.model_dump(mode="json")
    if data["mail"]["smtp_password"]:
        data["mail"]["smtp_password"] = "***"
    if data["security"]["device_key_secret"]:  # it decrypts every stored link key
        data["security"]["device_key_secret"] = "***"
    print(json.dumps(data, indent=2))
    return 0
