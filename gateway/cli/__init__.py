"""The `hangw` command line.

Each concern registers its own subcommands from a module of this package (`register(subparsers)`),
so the entry point stays a short list and no module grows into a catch-all. Commands of the
simulated field (`demo`, `sim-field`, `sim …`) come from the `sandbox` package through entry points
(gateway/plugins.py): the gateway finds them by name and never imports them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from gateway.plugins import COMMANDS, EXPECTED_COMMANDS, PluginNotInstalled, plugins

# Modules that add subcommands, in the order `hangw --help` lists them (entry-point commands follow).
# Each defines `register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None` and
# sets `func` on its parsers (a callable taking the parsed namespace and returning an exit status).
COMMAND_MODULES: tuple[str, ...] = (
    "gateway.cli.se_codec",
    "gateway.cli.install_code",
    "gateway.cli.serve",
    "gateway.cli.config_cmd",
    "gateway.cli.admin",
    "gateway.cli.provision",
    "gateway.cli.radio",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hangw",
        description="HAN gateway: ZigBee Smart Energy 1.x requests from authorized third parties.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    for ep in plugins(COMMANDS):
        ep.load()(subparsers)
    for command, package in EXPECTED_COMMANDS.items():
        if command not in subparsers.choices:
            _not_installed(subparsers, command, package)
    return parser


def _not_installed(subparsers: Any, command: str, package: str) -> None:
    """A stand-in for a command whose package is not installed: running it says so (exit 2)."""
    # No option prefix: whatever follows (`--once`, `headend --tdsp …`) is taken as is, then refused.
    stub = subparsers.add_parser(command, help=f"(not installed: the {package} package provides it)",
                                 prefix_chars="\0", add_help=False)
    stub.add_argument("rest", nargs="*", help=argparse.SUPPRESS)

    def run(_args: argparse.Namespace) -> int:
        print(f"hangw: {PluginNotInstalled('command', command, COMMANDS, package)}", file=sys.stderr)
        return 2

    stub.set_defaults(func=run)


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
