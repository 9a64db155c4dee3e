"""`hangw COMMAND` imports only COMMAND's module (gateway/cli/__init__.py): the table that says which
module adds which command must agree with what the modules register, and a process running one
command must not have imported the others (the tests start hundreds of `hangw` processes)."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

from gateway.cli import COMMAND_MODULES, build_parser
from gateway.plugins import COMMANDS, EXPECTED_COMMANDS, plugins


def test_each_module_registers_exactly_the_commands_the_table_gives_it() -> None:
    for module in set(COMMAND_MODULES.values()):
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).register(sub)
        assert set(sub.choices) == {c for c, m in COMMAND_MODULES.items() if m == module}, module


def test_the_full_parser_lists_every_command_and_a_narrow_one_only_its_own() -> None:
    def commands(parser: argparse.ArgumentParser) -> set[str]:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return set(action.choices)

    every = set(COMMAND_MODULES) | set(EXPECTED_COMMANDS) | {ep.name.split(".")[0] for ep in plugins(COMMANDS)}
    assert commands(build_parser()) == every
    assert commands(build_parser("no-such-command")) == every  # argparse names them all in its error
    for command in every:
        assert commands(build_parser(command)) == {command}


def _imported_after(argv: list[str]) -> set[str]:
    code = ("import sys, contextlib, io\nfrom gateway.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            f"    main({argv!r})\nprint(' '.join(sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return set(done.stdout.split())


def test_running_one_command_imports_no_other_commands_module() -> None:
    loaded = _imported_after(["se", "decode", "messaging", "0901010700000000"])
    assert "gateway.cli.se_codec" in loaded
    others = {m for c, m in COMMAND_MODULES.items() if c != "se"} | {"sandbox.demo", "sandbox.sim_headend"}
    assert not others & loaded, others & loaded
    # Nor what they would pull in: the store, the web stack, the radio.
    assert not {"sqlalchemy", "fastapi", "bellows", "httpx"} & loaded


def test_an_unknown_command_is_refused_naming_every_command() -> None:
    done = subprocess.run([sys.executable, "-m", "gateway", "no-such-command"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2
    for command in ("se", "serve", "admin", "radio", "demo", "sim"):
        assert repr(command) in done.stderr, done.stderr
