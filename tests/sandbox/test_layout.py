"""The house's layout holds: the import contracts (pyproject.toml [tool.importlinter]) are kept, and
`hangw` reaches the sandbox only by name — an installation without its entry points says "not
installed", naming the command or route kind, instead of failing on an import.

The second party here is an install without the sandbox: a shadow `han_gateway` dist-info first on
the path, whose entry points lack `hangw.commands` and `hangw.routes` (importlib.metadata takes the
first distribution of a name it finds), so the real package code runs with the plugins absent. These
runs start outside the source tree, whose own han_gateway.egg-info would otherwise be found first.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def test_the_import_contracts_are_kept() -> None:
    run = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


@pytest.fixture
def without_sandbox(tmp_path: Path) -> dict[str, str]:
    dist = metadata.distribution("han-gateway")
    shadow = tmp_path / "site" / f"han_gateway-{dist.version}.dist-info"
    shadow.mkdir(parents=True)
    shadow.joinpath("METADATA").write_text(dist.read_text("METADATA") or "Name: han-gateway\n")
    kept = [ep for ep in dist.entry_points if ep.group not in ("hangw.commands", "hangw.routes")]
    assert kept and len(kept) < len(dist.entry_points), "the installed package should carry the sandbox's entry points"
    shadow.joinpath("entry_points.txt").write_text(
        "".join(f"[{ep.group}]\n{ep.name} = {ep.value}\n\n" for ep in kept))
    return {**os.environ, "PYTHONPATH": str(tmp_path / "site")}


def _hangw(env: dict[str, str] | None, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_the_sandbox_commands_are_found_by_name() -> None:
    run = _hangw(None, "--help")
    assert run.returncode == 0, run.stderr
    for command in ("demo", "sim-field", "sim"):
        assert f"\n    {command} " in run.stdout
    assert "not installed" not in run.stdout
    run = _hangw(None, "sim", "--help")
    assert "headend" in run.stdout and "ncp" in run.stdout


@pytest.mark.parametrize("argv", [["demo", "--once"], ["sim-field", "--print-csv", "a@b.test"],
                                  ["sim", "headend", "--tdsp", "oncor"]])
def test_a_missing_sandbox_command_says_not_installed(without_sandbox: dict[str, str], tmp_path: Path,
                                                      argv: list[str]) -> None:
    help_text = _hangw(without_sandbox, "--help", cwd=tmp_path).stdout
    assert f"\n    {argv[0]} " in help_text and "not installed" in help_text
    run = _hangw(without_sandbox, *argv, cwd=tmp_path)
    assert run.returncode == 2
    assert f"command {argv[0]!r} is not installed" in run.stderr
    assert "hangw.commands" in run.stderr and "sandbox" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("kind", ["simulated", "simulated_remote"])
def test_a_missing_route_kind_says_not_installed(without_sandbox: dict[str, str], tmp_path: Path, kind: str) -> None:
    config = tmp_path / "hangw.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[server]\nport = 0\n'
                      f'[routes]\nkind = "{kind}"\nurl = "http://127.0.0.1:9"\n')
    run = _hangw(without_sandbox, "serve", "-c", str(config), cwd=tmp_path)
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"routes.kind {kind!r} is not installed" in run.stderr
    assert "hangw.routes" in run.stderr and "Traceback" not in run.stderr
