"""The `hangw` command line.

Each concern registers its own subcommands from a module of this package (`register(subparsers)`),
so the entry point stays a short list and no module grows into a catch-all. Commands of the
simulated field (`demo`, `sim-field`, `sim …`) come from the `sandbox` package through entry points
(gateway/plugins.py): the gateway finds them by name and never imports them.

Only the module of the command being run is imported: the modules pull in the store, FastAPI,
httpx or the radio, and every `hangw` process (the tests start hundreds) would pay for all of them.
`hangw --help`, no command or an unknown one import them all, so the listing and argparse's
"invalid choice" message name every command.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from gateway.plugins import COMMANDS, EXPECTED_COMMANDS, PluginNotInstalled, plugins

# The module that adds each top-level command, in the order `hangw --help` lists them (entry-point
# commands follow). Each module defines
# `register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None` and sets `func`
# on its parsers (a callable taking the parsed namespace and returning an exit status).
# tests/gateway/test_cli_lazy.py checks that each module registers exactly the commands named here.
COMMAND_MODULES: dict[str, str] = {
    "se": "gateway.cli.se_codec",
    "install-code": "gateway.cli.install_code",
    "serve": "gateway.cli.serve",
    "config": "gateway.cli.config_cmd",
    "admin": "gateway.cli.admin",
    "provision": "gateway.cli.provision",
    "radio": "gateway.cli.radio",
}


def _plugin_command(entry_point_name: str) -> str:
    """The top-level command an entry point adds: `sim.ncp` adds to `hangw sim`."""
    return entry_point_name.split(".", 1)[0]


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for `command` alone (only its module imported), or for every command when
    `command` is None or names no known command."""
    parser = argparse.ArgumentParser(
        prog="hangw",
        description="HAN gateway: ZigBee Smart Energy 1.x requests from authorized third parties.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    entry_points = plugins(COMMANDS)
    known = (command in COMMAND_MODULES or command in EXPECTED_COMMANDS
             or any(_plugin_command(ep.name) == command for ep in entry_points))
    wanted = (lambda name: name == command) if known else (lambda name: True)
    for name, module in COMMAND_MODULES.items():
        if wanted(name):
            importlib.import_module(module).register(subparsers)
    for ep in entry_points:
        if wanted(_plugin_command(ep.name)):
            ep.load()(subparsers)
    for name, package in EXPECTED_COMMANDS.items():
        if wanted(name) and name not in subparsers.choices:
            _not_installed(subparsers, name, package)
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
    args_in = list(sys.argv[1:] if argv is None else argv)
    # The top-level parser has no option but -h, so a first word not starting with "-" is the command.
    command = args_in[0] if args_in and not args_in[0].startswith("-") else None
    parser = build_parser(command)
    args = parser.parse_args(args_in)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    status: int = func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
