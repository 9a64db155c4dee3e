"""The `hangw` command line.

Each concern registers its own subcommands from a module of this package (`register(subparsers)`),
so the entry point stays a short list and no module grows into a catch-all.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules that add subcommands, in the order `hangw --help` lists them. Each defines
# `register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None` and sets
# `func` on its parsers (a callable taking the parsed namespace and returning an exit status).
COMMAND_MODULES: tuple[str, ...] = (
    "gateway.cli.se_codec",
    "gateway.cli.install_code",
    "gateway.cli.demo",
    "gateway.cli.serve",
    "gateway.cli.config_cmd",
    "gateway.cli.admin",
    "gateway.cli.sim_headend",
    "gateway.cli.provision",
    "gateway.cli.radio",
    "gateway.cli.sim_ncp",
    "gateway.cli.simfield",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hangw",
        description="HAN gateway: ZigBee Smart Energy 1.x requests from authorized third parties.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    status: int = func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
